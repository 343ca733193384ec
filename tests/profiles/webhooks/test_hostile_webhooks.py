"""Every webhook kind against hostile requests: bad, missing, replayed and stale signatures, bodies
over the limit, wrong content types, deep nesting, invalid UTF-8 and JSON that cannot be stored.
Each gets the right 4xx with a JSON {"code", "message"} and stores nothing (a replay stores one row)."""

import json
import time

import pytest

from profiles.models import RawEvent
from profiles.sources import source_create
from tests.profiles.webhooks.senders import fixture, mindbody_headers, shopify_headers, standard_headers, stripe_headers

pytestmark = pytest.mark.django_db

STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SECRETS = {
    "stripe": "whsec_test_stripe",
    "shopify": "shpss_app_secret",
    "mindbody": "mb-signature-key",
    "standard_webhook": STANDARD_SECRET,
}
KINDS = list(SECRETS)
STANDARD_PAYLOAD = {"type": "booking.created", "timestamp": "2026-05-01T10:00:00Z", "data": {"identifiers": {}}}


def sign(kind: str, body: bytes, secret: str | None = None, timestamp: int | None = None) -> dict:
    secret = secret or SECRETS[kind]
    if kind == "stripe":
        return stripe_headers(body, secret, timestamp=timestamp)
    if kind == "shopify":
        return shopify_headers(body, secret, topic="customers/create", event_id="shopify-evt-1")
    if kind == "mindbody":
        return mindbody_headers(body, secret)
    return standard_headers(body, secret, message_id="msg_hostile_1", timestamp=timestamp)


def valid_body(kind: str) -> bytes:
    payload = {
        "stripe": lambda: fixture("stripe_customer_created"),
        "shopify": lambda: fixture("shopify_customers_create"),
        "mindbody": lambda: fixture("mindbody_client_created"),
        "standard_webhook": lambda: STANDARD_PAYLOAD,
    }[kind]()
    return json.dumps(payload).encode()


@pytest.fixture
def source_of(db):
    def make(kind):
        alternate = "whsec_" + "A" * 32 if kind == "standard_webhook" else "attacker-secret"
        source, _ = source_create(
            name=f"Hostile {kind}", kind=kind, slug=f"hostile-{kind.replace('_', '-')}", signing_secret=SECRETS[kind]
        )
        return source, alternate

    return make


def post(client, kind, body: bytes, headers: dict, content_type="application/json"):
    slug = f"hostile-{kind.replace('_', '-')}"
    return client.post(f"/webhooks/{slug}/", data=body, content_type=content_type, **headers)


def assert_refused(response, status: int, code: str | tuple):
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"code", "message"} and len(body["message"]) > 10
    assert body["code"] in (code if isinstance(code, tuple) else (code,)), body
    assert not RawEvent.objects.exists()


def _header_names(kind):
    return {
        "stripe": ["HTTP_STRIPE_SIGNATURE"],
        "shopify": ["HTTP_X_SHOPIFY_HMAC_SHA256"],
        "mindbody": ["HTTP_X_MINDBODY_SIGNATURE"],
        "standard_webhook": ["HTTP_WEBHOOK_SIGNATURE"],
    }[kind]


@pytest.mark.parametrize("kind", KINDS)
def test_missing_signature_is_401(client, source_of, kind):
    source_of(kind)
    body = valid_body(kind)
    headers = {name: value for name, value in sign(kind, body).items() if name not in _header_names(kind)}
    assert_refused(post(client, kind, body, headers), 401, "invalid_signature")


@pytest.mark.parametrize("kind", KINDS)
def test_signature_with_another_secret_is_401(client, source_of, kind):
    _, other = source_of(kind)
    body = valid_body(kind)
    assert_refused(post(client, kind, body, sign(kind, body, secret=other)), 401, "invalid_signature")


@pytest.mark.parametrize("kind", KINDS)
def test_replayed_signature_on_a_changed_body_is_401(client, source_of, kind):
    source_of(kind)
    body = valid_body(kind)
    headers = sign(kind, body)
    tampered = body.replace(b"}", b', "injected": true}', 1)
    assert_refused(post(client, kind, tampered, headers), 401, "invalid_signature")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("garbage", ["é", "v1,ñ", "sha256=💥", "t=1,v1=" + "ä" * 64, " " * 3])
def test_non_ascii_or_garbage_signature_is_401(client, source_of, kind, garbage):
    """Non-ASCII header values made hmac.compare_digest raise TypeError (500) before."""
    source_of(kind)
    body = valid_body(kind)
    headers = {**sign(kind, body), **dict.fromkeys(_header_names(kind), garbage.encode().decode("latin-1"))}
    if kind == "stripe" and garbage.startswith("t="):
        headers["HTTP_STRIPE_SIGNATURE"] = f"t={int(time.time())},v1={'ä' * 64}"
    assert_refused(post(client, kind, body, headers), 401, "invalid_signature")


@pytest.mark.parametrize("kind", KINDS)
def test_replayed_delivery_is_acknowledged_and_stored_once(client, source_of, kind):
    source_of(kind)
    body = valid_body(kind)
    headers = sign(kind, body)
    statuses = [post(client, kind, body, headers).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    assert RawEvent.objects.count() == 1


@pytest.mark.parametrize("kind", ["stripe", "standard_webhook"])
@pytest.mark.parametrize("offset", [-301, 301, -86_400 * 365])
def test_stale_or_future_signed_timestamp_is_400(client, source_of, kind, offset):
    source_of(kind)
    body = valid_body(kind)
    headers = sign(kind, body, timestamp=int(time.time()) + offset)
    assert_refused(post(client, kind, body, headers), 400, "stale_timestamp")


@pytest.mark.parametrize("kind", ["stripe", "standard_webhook"])
@pytest.mark.parametrize("timestamp", ["²", "١٢٣", "9" * 400, "-5", "1.5", ""])
def test_malformed_signed_timestamp_is_refused(client, source_of, kind, timestamp):
    """`²` passed str.isdigit() and then int() raised ValueError (500); 400 digits overflowed float."""
    source_of(kind)
    body = valid_body(kind)
    headers = sign(kind, body)
    if kind == "stripe":
        headers["HTTP_STRIPE_SIGNATURE"] = f"t={timestamp}," + headers["HTTP_STRIPE_SIGNATURE"].split(",", 1)[1]
        expected = (401, "invalid_signature")
    else:
        headers["HTTP_WEBHOOK_TIMESTAMP"] = timestamp.encode().decode("latin-1")
        expected = (401, "invalid_signature") if timestamp == "" else (400, "stale_timestamp")
    assert_refused(post(client, kind, body, headers), *expected)


@pytest.mark.parametrize("kind", KINDS)
def test_body_over_the_limit_is_413(client, source_of, settings, kind):
    source_of(kind)
    settings.WEBHOOK_MAX_BODY_BYTES = 2_000
    body = json.dumps({"id": "evt_big", "messageId": "m-big", "pad": "x" * 5_000}).encode()
    assert_refused(post(client, kind, body, sign(kind, body)), 413, "body_too_large")


@pytest.mark.parametrize("kind", KINDS)
def test_malformed_content_length_is_400(client, source_of, kind):
    """int("abc") on the Content-Length header raised ValueError (500) before."""
    source_of(kind)
    body = valid_body(kind)
    response = post(client, kind, body, {**sign(kind, body), "CONTENT_LENGTH": "abc"})
    assert_refused(response, 400, "invalid_content_length")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml", ""],
)
def test_wrong_content_type_is_415(client, source_of, kind, content_type):
    source_of(kind)
    body = valid_body(kind)
    assert_refused(post(client, kind, body, sign(kind, body), content_type=content_type), 415, "unsupported_media_type")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "body, code",
    [
        (b'{"id": "evt_1", "messageId": "m-1", "a": ' + b"[" * 100 + b"]" * 100 + b"}", "too_deep"),
        (b'{"id": "evt_1", "messageId": "m-1", "a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "too_deep"),
        (b'{"id": "evt_1", "messageId": "m-1", "name": "\xff\xfe\xc3"}', "invalid_json"),
        (b'{"id": "evt_1", "messageId": "m-1", "amount": NaN}', "invalid_json"),
        (b'{"id": "evt_1", "messageId": "m-1", "amount": 1e400}', "invalid_json"),
        (b'{"id": "evt_1", "messageId": "m-1", "amount": ' + b"7" * 5_000 + b"}", "invalid_json"),
        (b'{"id": "evt_1", "messageId": "m-1", "name": "a\\u0000b"}', "invalid_string"),
        (b'{"id": "evt_1", "messageId": "m-1", "name": "\\udc00"}', "invalid_string"),
        (b'["evt_1"]', "invalid_json"),
        (b"  ", "invalid_json"),
    ],
    ids=["deep", "very-deep", "invalid-utf8", "nan", "infinity", "huge-int", "nul", "lone-surrogate", "array", "blank"],
)
def test_correctly_signed_but_hostile_json_is_400(client, source_of, kind, body, code):
    """Signed with the right secret, so only the body is wrong. Before: RecursionError, ValueError or
    PostgreSQL's jsonb refusing NaN, NUL and surrogates all answered 500."""
    source_of(kind)
    assert_refused(post(client, kind, body, sign(kind, body)), 400, code)


@pytest.mark.parametrize("kind", ["stripe", "mindbody"])
@pytest.mark.parametrize("event_id", [{"nested": 1}, ["a"], True, ""])
def test_event_id_of_the_wrong_type_is_400(client, source_of, kind, event_id):
    source_of(kind)
    body = json.dumps({"id": event_id, "messageId": event_id, "type": "customer.created"}).encode()
    assert_refused(post(client, kind, body, sign(kind, body)), 400, "missing_event_id")

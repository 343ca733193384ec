"""The Segment-compatible tracking API under hostile bodies (property-based): never a 5xx, every
refusal a JSON {"code", "message"} that says what was wrong, and nothing stored for a refusal."""

import base64
import gzip
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profiles.models import RawEvent

pytestmark = [pytest.mark.fuzz, pytest.mark.django_db]

FUZZ = settings(
    max_examples=60, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
PATHS = ["/v1/identify", "/v1/track", "/v1/page", "/v1/screen", "/v1/group", "/v1/alias", "/v1/batch"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
)
# Field values of the wrong kind, of the right kind, and the ones that break naive code.
odd_values = st.one_of(
    json_values,
    st.sampled_from(["", " ", "\u0000", "\ud800", "null", "0", "💥" * 50, "a" * 101, "x" * 40_000]),
)
MESSAGE_FIELDS = [
    "type",
    "event",
    "userId",
    "anonymousId",
    "previousId",
    "groupId",
    "messageId",
    "timestamp",
    "sentAt",
    "originalTimestamp",
    "traits",
    "properties",
    "context",
    "integrations",
    "name",
]
messages = st.dictionaries(st.sampled_from(MESSAGE_FIELDS), odd_values, max_size=8).map(
    lambda m: {"userId": "u-1", "event": "Fuzzed", "type": "track", **m}
)
documents = st.one_of(
    messages,
    st.builds(
        lambda batch, context, sent_at: {"batch": batch, "context": context, "sentAt": sent_at},
        st.one_of(st.lists(messages | odd_values, max_size=4), odd_values),
        odd_values,
        odd_values,
    ),
)


def _post(client, path, body: bytes, write_key: str, **headers):
    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    return client.post(path, data=body, content_type="application/json", HTTP_AUTHORIZATION=auth, **headers)


def _assert_answer(response, stored_before: int, messages_sent: int) -> None:
    assert response.status_code < 500, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    stored = RawEvent.objects.count() - stored_before
    if response.status_code == 200:
        assert body == {"success": True}
        assert 0 <= stored <= messages_sent
    else:
        assert response.status_code in (400, 401, 413, 415), response.status_code
        assert set(body) == {"code", "message"} and body["code"] and len(body["message"]) > 10, body
        assert stored == 0, f"{stored} rows stored for a refused request: {body}"


@FUZZ
@given(path=st.sampled_from(PATHS), document=documents)
def test_hostile_json_documents(client, tracking_source, path, document):
    _, write_key = tracking_source
    body = json.dumps(document, ensure_ascii=True).encode()
    before = RawEvent.objects.count()
    response = _post(client, path, body, write_key)
    sent = len(document["batch"]) if path.endswith("batch") and isinstance(document.get("batch"), list) else 1
    _assert_answer(response, before, sent)


@FUZZ
@given(path=st.sampled_from(PATHS), body=st.binary(max_size=300), gzipped=st.booleans())
def test_arbitrary_bytes(client, tracking_source, path, body, gzipped):
    _, write_key = tracking_source
    headers = {"HTTP_CONTENT_ENCODING": "gzip"} if gzipped else {}
    before = RawEvent.objects.count()
    _assert_answer(_post(client, path, body, write_key, **headers), before, 1)


@settings(FUZZ, max_examples=25)
@given(
    path=st.sampled_from(PATHS),
    depth=st.integers(min_value=50, max_value=100_000),
    opener=st.sampled_from(['{"a":', "[", '{"properties":']),
)
def test_deep_nesting(client, tracking_source, path, depth, opener):
    _, write_key = tracking_source
    closer = {"[": "]"}.get(opener, "}")
    body = ('{"userId":"u","event":"e","traits":' + opener * depth + "1" + closer * depth + "}").encode()
    before = RawEvent.objects.count()
    response = _post(client, path, body, write_key)
    _assert_answer(response, before, 1)
    if depth > 64:
        assert response.status_code == 400


@settings(FUZZ, max_examples=20)
@given(path=st.sampled_from(PATHS), size=st.integers(min_value=30_000, max_value=3_000_000))
def test_huge_strings(client, tracking_source, path, size):
    _, write_key = tracking_source
    body = json.dumps({"userId": "u", "event": "e", "type": "track", "properties": {"note": "é" * size}}).encode()
    before = RawEvent.objects.count()
    _assert_answer(_post(client, path, body, write_key), before, 1)


@pytest.mark.parametrize(
    "body, code",
    [
        (b'{"userId": "u", "event": "e", "properties": {"v": NaN}}', "invalid_json"),
        (b'{"userId": "u", "event": "e", "properties": {"v": 1e999}}', "invalid_json"),
        (b'{"userId": "u", "event": "e", "properties": {"v": ' + b"9" * 5000 + b"}}", "invalid_json"),
        (b'{"userId": "u", "event": "e", "properties": {"v": "a\\u0000b"}}', "invalid_string"),
        (b'{"userId": "u", "event": "e", "properties": {"\\ud800": 1}}', "invalid_string"),
        (b'{"userId": "u", "event": "\xff\xfe"}', "invalid_json"),
        (b'{"userId": {"id": 1}, "event": "e"}', "invalid_field"),
        (b'{"userId": "u", "event": "e", "integrations": "all"}', "invalid_field"),
        (
            b'{"batch": [{"type": "track", "userId": "u", "event": "e", "context": [1]}], "context": {"a": 1}}',
            "invalid_field",
        ),
        (
            b'{"batch": [{"type": "track", "userId": "u", "event": "e", "integrations": 3}], "integrations": {"a": 1}}',
            "invalid_field",
        ),
        (b'{"userId": "u", "event": "e", "traits": ' + b"[" * 65 + b"]" * 65 + b"}", "too_deep"),
        (b"[" * 100_000 + b"]" * 100_000, "too_deep"),
    ],
)
def test_regressions_found_by_fuzzing(client, tracking_source, body, code):
    """Before, each of these answered 500 (ValueError, TypeError, RecursionError, or PostgreSQL's jsonb
    refusing NaN, NUL and lone surrogates) or stored a message no mapper can use."""
    _, write_key = tracking_source
    path = "/v1/batch" if body.startswith(b'{"batch"') else "/v1/track"
    response = _post(client, path, body, write_key)
    assert (response.status_code, response.json()["code"]) == (400, code)
    assert not RawEvent.objects.exists()


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_AUTHORIZATION": "Basic ñññ"},
        {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"\xff\xfe:").decode()},
        {"HTTP_X_WRITE_KEY": ""},
    ],
)
def test_hostile_credentials_are_401(client, tracking_source, headers):
    response = client.post(
        "/v1/track", data='{"userId": "u", "event": "e"}', content_type="application/json", **headers
    )
    assert response.status_code == 401 and response.json()["code"] in ("missing_write_key", "invalid_write_key")
    assert not RawEvent.objects.exists()


def test_write_key_of_the_wrong_type_in_the_body_is_401(client, tracking_source):
    response = client.post(
        "/v1/track",
        data=json.dumps({"writeKey": {"k": 1}, "userId": "u", "event": "e"}),
        content_type="application/json",
    )
    assert (response.status_code, response.json()["code"]) == (401, "missing_write_key")


def test_gzip_bomb_is_refused_without_inflating(client, tracking_source):
    _, write_key = tracking_source
    bomb = gzip.compress(b'{"userId": "u", "event": "e", "pad": "' + b"0" * 50_000_000 + b'"}')
    response = _post(client, "/v1/track", bomb, write_key, HTTP_CONTENT_ENCODING="gzip")
    assert (response.status_code, response.json()["code"]) == (400, "batch_too_large")
    assert not RawEvent.objects.exists()

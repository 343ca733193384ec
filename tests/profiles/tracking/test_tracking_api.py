import base64
import gzip
import json

import pytest
from django.core.cache import cache

from profiles.models import RawEvent
from profiles.sources import source_create

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_rate_counters():
    cache.clear()


@pytest.fixture
def tracking_source():
    source, credentials = source_create(name="Web SDK", kind="tracking")
    return source, credentials.write_key


def basic(write_key):
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()


def post(client, path, body, write_key=None, **headers):
    if write_key:
        headers["HTTP_AUTHORIZATION"] = basic(write_key)
    data = body if isinstance(body, bytes) else json.dumps(body)
    return client.post(path, data=data, content_type="application/json", **headers)


def track(message_id="m-1", **extra):
    return {"type": "track", "event": "Class Booked", "userId": "u1", "messageId": message_id, **extra}


def test_batch_with_basic_auth_stores_one_raw_event_per_message(client, tracking_source):
    source, key = tracking_source
    body = {"batch": [track("m-1"), {**track("m-2"), "type": "page", "name": "Home"}], "sentAt": "2026-01-01T00:00:00Z"}
    response = post(client, "/v1/batch", body, key)

    assert response.status_code == 200 and response.json() == {"success": True}
    rows = {r.external_id: r for r in RawEvent.objects.filter(source=source)}
    assert set(rows) == {"m-1", "m-2"}
    assert rows["m-2"].topic == "page" and rows["m-2"].payload["sentAt"] == "2026-01-01T00:00:00Z"
    assert rows["m-1"].payload["receivedAt"].endswith("Z")


@pytest.mark.parametrize(
    "path", ["/v1/identify", "/v1/track", "/v1/page", "/v1/screen", "/v1/group", "/v1/alias", "/v1/track/"]
)
def test_each_call_type_endpoint(client, tracking_source, path):
    source, key = tracking_source
    message = {"userId": "u1", "event": "X", "groupId": "g1", "previousId": "anon-1", "messageId": "one"}
    assert post(client, path, message, key).status_code == 200
    assert RawEvent.objects.get(source=source).topic == path.strip("/").split("/")[1]


def test_write_key_in_body_and_in_header(client, tracking_source):
    source, key = tracking_source
    assert post(client, "/v1/track", {**track("a"), "writeKey": key}).status_code == 200
    assert post(client, "/v1/track", track("b"), HTTP_X_WRITE_KEY=key).status_code == 200
    assert set(RawEvent.objects.values_list("external_id", flat=True)) == {"a", "b"}
    assert "writeKey" not in RawEvent.objects.get(external_id="a").payload


@pytest.mark.parametrize("auth", [None, "Basic bm9wZTo=", "Basic !!!"])
def test_missing_or_wrong_write_key_is_401_json(client, tracking_source, auth):
    headers = {"HTTP_AUTHORIZATION": auth} if auth else {}
    response = post(client, "/v1/track", track(), **headers)
    assert response.status_code == 401
    assert response.json()["code"] in {"missing_write_key", "invalid_write_key"}
    assert not RawEvent.objects.exists()


def test_gzip_bodies(client, tracking_source):
    _, key = tracking_source
    body = gzip.compress(json.dumps({"batch": [track("gz")]}).encode())
    response = post(client, "/v1/batch", body, key, HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 200
    assert RawEvent.objects.get().external_id == "gz"


def test_gzip_bomb_is_refused_without_inflating_it(client, tracking_source):
    _, key = tracking_source
    bomb = gzip.compress(b'{"batch": [' + b" " * 5_000_000 + b"]}")
    response = post(client, "/v1/batch", bomb, key, HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 400 and response.json()["code"] == "batch_too_large"


def test_message_over_32_kb_and_batch_over_500_kb_are_400(client, tracking_source):
    _, key = tracking_source
    big = track("big", properties={"blob": "x" * 33_000})
    response = post(client, "/v1/batch", {"batch": [track("ok"), big]}, key)
    assert response.status_code == 400 and response.json()["code"] == "message_too_large"
    many = {"batch": [track(f"m{i}", properties={"blob": "y" * 20_000}) for i in range(26)]}
    response = post(client, "/v1/batch", many, key)
    assert response.status_code == 400 and response.json()["code"] == "batch_too_large"
    assert not RawEvent.objects.exists()


@pytest.mark.parametrize(
    "message, code",
    [
        ({"type": "track", "event": "X", "messageId": "m"}, "missing_identity"),
        ({"type": "track", "userId": "u", "messageId": "m"}, "missing_event"),
        ({"type": "group", "userId": "u", "messageId": "m"}, "missing_group_id"),
        ({"type": "alias", "userId": "u", "messageId": "m"}, "missing_alias_ids"),
        ({"type": "launch", "userId": "u", "messageId": "m"}, "invalid_type"),
        ({"type": "track", "event": "X", "userId": "u", "messageId": "x" * 101}, "invalid_message_id"),
        ({"type": "track", "event": "X", "userId": "u", "properties": [1]}, "invalid_field"),
    ],
)
def test_an_invalid_message_refuses_the_whole_batch(client, tracking_source, message, code):
    _, key = tracking_source
    response = post(client, "/v1/batch", {"batch": [track("good"), message]}, key)
    assert response.status_code == 400
    assert response.json()["code"] == code and "batch[1]" in response.json()["message"]
    assert not RawEvent.objects.exists()


def test_malformed_json_is_400(client, tracking_source):
    _, key = tracking_source
    response = post(client, "/v1/batch", b"{not json", key)
    assert response.status_code == 400 and response.json()["code"] == "invalid_json"


def test_get_is_405(client):
    assert client.get("/v1/batch").status_code == 405


def test_message_id_is_deduplicated_per_source(client, tracking_source):
    source, key = tracking_source
    other, other_key = source_create(name="App SDK", kind="tracking")
    for _ in range(3):
        assert post(client, "/v1/track", track("same"), key).status_code == 200
    assert post(client, "/v1/track", track("same"), other_key.write_key).status_code == 200
    assert RawEvent.objects.filter(source=source).count() == 1
    assert RawEvent.objects.filter(source=other).count() == 1


def test_missing_message_id_is_generated(client, tracking_source):
    _, key = tracking_source
    message = track()
    del message["messageId"]
    assert post(client, "/v1/track", message, key).status_code == 200
    assert len(RawEvent.objects.get().external_id) == 36


def test_batch_context_and_integrations_are_merged_into_each_item(client, tracking_source):
    _, key = tracking_source
    body = {
        "batch": [track("c1", context={"ip": "10.0.0.9"}), track("c2")],
        "context": {"ip": "203.0.113.1", "library": {"name": "x"}},
        "integrations": {"All": False},
    }
    assert post(client, "/v1/batch", body, key).status_code == 200
    first, second = (RawEvent.objects.get(external_id=i).payload for i in ("c1", "c2"))
    assert first["context"] == {"ip": "10.0.0.9", "library": {"name": "x"}}
    assert second["context"] == {"ip": "203.0.113.1", "library": {"name": "x"}}
    assert first["integrations"] == second["integrations"] == {"All": False}


def test_rate_limit_answers_429_with_retry_after(client, tracking_source):
    source, key = tracking_source
    source.rate_limit_per_second = 3
    source.save()  # applies to the next request: sources are read from the database on each one
    assert post(client, "/v1/batch", {"batch": [track("r1"), track("r2")]}, key).status_code == 200
    response = post(client, "/v1/batch", {"batch": [track("r3"), track("r4")]}, key)
    if response.status_code == 200:  # the one-second window rolled over between the two calls
        response = post(client, "/v1/batch", {"batch": [track(f"r{i}") for i in range(5, 9)]}, key)
    assert response.status_code == 429
    assert response["Retry-After"] == "1" and response.json()["code"] == "rate_limited"
    assert not RawEvent.objects.filter(external_id__in=["r5", "r6", "r7", "r8"]).exists()


def test_a_tracking_key_does_not_work_for_a_webhook_source(client):
    _, credentials = source_create(name="CSV", kind="csv")
    response = post(client, "/v1/track", track(), credentials.write_key)
    assert response.status_code == 401

"""The real segment-analytics-python client against a live server running our tracking API."""

from datetime import UTC, datetime

import pytest
from segment.analytics import request as segment_request
from segment.analytics.client import Client
from segment.analytics.request import APIError

from identity.selectors import identifier_find
from profiles.models import Event, RawEvent
from profiles.processing import raw_events_process
from profiles.sources import source_create

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def sdk(live_server):
    source, credentials = source_create(name="Python SDK", kind="tracking")
    errors = []

    def make(gzip=False, write_key=None):
        client = Client(
            write_key or credentials.write_key,
            host=live_server.url,
            sync_mode=True,
            gzip=gzip,
            max_retries=0,
            on_error=lambda error, batch: errors.append(error),
        )
        return client

    yield source, make, errors
    # The SDK keeps one module-level keep-alive session; close its sockets so the live server's
    # request threads end and release their database connections before the test database is dropped.
    segment_request._session.close()


@pytest.mark.parametrize("gzip", [False, True])
def test_sdk_calls_are_stored_with_their_message_ids(sdk, gzip):
    source, make, errors = sdk
    client = make(gzip=gzip)
    when = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    client.identify(
        "user-42", {"email": "Ada@Example.com", "firstName": "Ada"}, message_id="sdk-identify", timestamp=when
    )
    client.track(
        "user-42", "Order Completed", {"order_id": 1001, "total": 49.5, "currency": "eur"}, message_id="sdk-track"
    )
    client.page("user-42", "Docs", "Pricing", {"url": "https://studio.example/pricing"}, message_id="sdk-page")
    client.alias("anon-7", "user-42", message_id="sdk-alias")
    client.flush()

    assert errors == []
    rows = {r.external_id: r for r in RawEvent.objects.filter(source=source)}
    assert set(rows) == {"sdk-identify", "sdk-track", "sdk-page", "sdk-alias"}
    identify = rows["sdk-identify"].payload
    assert identify["userId"] == "user-42" and identify["traits"]["firstName"] == "Ada"
    assert identify["context"]["library"]["name"] == "analytics-python"
    assert identify["sentAt"] and identify["receivedAt"]
    assert rows["sdk-track"].payload["properties"]["order_id"] == 1001


def test_sdk_events_become_one_profile(sdk):
    source, make, errors = sdk
    client = make()
    client.identify("user-7", {"email": "grace@example.com", "phone": "+1 415 555 0199"}, anonymous_id="device-7")
    client.page(anonymous_id="device-7", name="Schedule", properties={"path": "/schedule"})
    client.track("user-7", "Order Completed", {"order_id": "o-1", "total": 20, "currency": "USD"})
    client.flush()
    assert errors == []

    # Test settings run django-q2 in sync mode, so the server's nudge already processed them;
    # this is what the sweeper would do if it had not.
    raw_events_process()

    assert sorted(RawEvent.objects.values_list("status", flat=True)) == ["processed"] * 3
    profile = identifier_find(type_slug="email", raw_value="GRACE@example.com").profile
    assert profile == identifier_find(type_slug="anonymous_id", raw_value="device-7").profile
    assert profile == identifier_find(type_slug="phone", raw_value="(415) 555-0199").profile
    assert sorted(Event.objects.filter(profile=profile).values_list("type", flat=True)) == [
        "order.completed",
        "page.viewed",
        "profile.identified",
    ]
    assert str(profile.lifetime_revenue) == "20.00"


def test_sdk_with_a_wrong_write_key_gets_401(sdk):
    _, make, errors = sdk
    client = make(write_key="wk_wrong")
    # In sync mode the client raises the API error it parsed from our JSON body.
    with pytest.raises(APIError) as raised:
        client.track("u", "Anything")
    assert (raised.value.status, raised.value.code) == (401, "invalid_write_key")
    assert not RawEvent.objects.exists()

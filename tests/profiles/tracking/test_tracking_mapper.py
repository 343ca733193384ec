from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest

from profiles.domain import ConsentObservation, IdentifierObservation, MappingError
from profiles.mappers.tracking import map_raw_event, occurred_at


def raw(**message):
    message.setdefault("receivedAt", "2026-05-01T12:00:10Z")
    return SimpleNamespace(payload=message)


def test_clock_skew_is_corrected_from_sent_at():
    # The device clock runs 1 hour fast: it says it sent at 13:00:05 an event it timestamped 13:00:00.
    message = {
        "timestamp": "2026-05-01T13:00:00Z",
        "sentAt": "2026-05-01T13:00:05Z",
        "receivedAt": "2026-05-01T12:00:10Z",
    }
    assert occurred_at(message) == datetime(2026, 5, 1, 12, 0, 5, tzinfo=UTC)


def test_original_timestamp_wins_over_timestamp_and_fallbacks():
    assert occurred_at(
        {
            "originalTimestamp": "2026-05-01T11:00:00Z",
            "timestamp": "2000-01-01T00:00:00Z",
            "sentAt": "2026-05-01T11:00:00Z",
            "receivedAt": "2026-05-01T12:00:00Z",
        }
    ) == datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    assert occurred_at({"timestamp": "2026-05-01T11:00:00+02:00", "receivedAt": "2026-05-01T12:00:00Z"}) == datetime(
        2026, 5, 1, 9, 0, tzinfo=UTC
    )
    assert occurred_at({"receivedAt": "2026-05-01T12:00:00Z"}) == datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    with pytest.raises(MappingError):
        occurred_at({})


def test_identify_maps_traits_identifiers_external_ids_and_consent():
    [event] = map_raw_event(
        raw(
            type="identify",
            userId="u1",
            anonymousId="a1",
            traits={"email": "Ada@Example.com", "firstName": "Ada", "lastName": "Lovelace", "empty": ""},
            context={
                "traits": {"phone": "+44 20 7946 0958"},
                "externalIds": [
                    {"id": "cus_9", "type": "stripe_customer_id", "collection": "users", "encoding": "none"},
                    {"id": "x", "type": "unknown_system_id", "collection": "users", "encoding": "none"},
                ],
                "consent": {"categoryPreferences": {"Advertising": False, "Analytics": True, "Strange": True}},
            },
        )
    )
    assert event.type == "profile.identified"
    assert event.traits == {
        "phone": "+44 20 7946 0958",
        "email": "Ada@Example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
    }
    assert set(event.identifiers) == {
        IdentifierObservation("user_id", "u1"),
        IdentifierObservation("anonymous_id", "a1"),
        IdentifierObservation("email", "Ada@Example.com"),
        IdentifierObservation("phone", "+44 20 7946 0958"),
        IdentifierObservation("stripe_customer_id", "cus_9"),
    }
    assert [(c.purpose, c.is_granted) for c in event.consent] == [("advertising", False), ("analytics", True)]
    assert isinstance(event.consent[0], ConsentObservation)


def test_order_completed_is_a_semantic_event_with_revenue():
    [event] = map_raw_event(
        raw(
            type="track",
            userId="u",
            event="Order Completed",
            properties={"order_id": 77, "total": 30.5, "currency": "eur", "coupon": "X"},
        )
    )
    assert event.type == "order.completed" and event.name == "Order Completed"
    assert event.properties == {"order_id": "77", "total": 30.5, "currency": "EUR", "coupon": "X"}
    assert (event.revenue, event.currency) == (Decimal("30.5"), "EUR")


def test_order_refunded_has_negative_revenue():
    [event] = map_raw_event(
        raw(
            type="track",
            userId="u",
            event="Order Refunded",
            properties={"order_id": "77", "total": 10, "currency": "USD"},
        )
    )
    assert event.type == "refund.issued" and event.revenue == Decimal("-10")
    assert event.properties["refund_id"] == "order-77" and event.properties["amount"] == 10


def test_other_track_events_are_custom_with_their_name():
    [event] = map_raw_event(raw(type="track", userId="u", event="Workout Logged", properties={"minutes": 45}))
    assert (event.type, event.name, event.properties) == ("track.custom", "Workout Logged", {"minutes": 45})
    assert event.revenue is None


def test_page_takes_context_page_fields():
    [event] = map_raw_event(
        raw(
            type="page",
            anonymousId="a",
            name="Pricing",
            context={"page": {"url": "https://x.example/p", "path": "/p", "title": "P"}},
        )
    )
    assert event.type == "page.viewed"
    assert event.properties == {"url": "https://x.example/p", "path": "/p", "title": "P", "name": "Pricing"}


def test_alias_links_previous_id_and_user_id():
    [event] = map_raw_event(raw(type="alias", previousId="anon-1", userId="u-1"))
    assert event.type == "profile.aliased"
    assert set(event.identifiers) == {
        IdentifierObservation("user_id", "u-1"),
        IdentifierObservation("anonymous_id", "anon-1"),
    }


def test_group_keeps_group_traits_out_of_the_person():
    [event] = map_raw_event(raw(type="group", userId="u", groupId=5, traits={"name": "Acme Gym"}))
    assert event.properties == {"group_id": "5", "traits": {"name": "Acme Gym"}}
    assert event.traits == {}

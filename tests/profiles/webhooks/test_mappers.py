from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest

from profiles.domain import ConsentObservation, IdentifierObservation, MappingError
from profiles.mappers import mindbody, shopify, standard_webhooks, stripe
from tests.profiles.webhooks.senders import fixture


def raw(payload, topic=""):
    return SimpleNamespace(payload=payload, topic=topic, headers={})


def test_stripe_customer_created():
    [event] = stripe.map_raw_event(raw(fixture("stripe_customer_created")))
    assert event.type == "customer.created"
    assert event.occurred_at == datetime.fromtimestamp(1717000000, tz=UTC)
    assert event.identifiers == (
        IdentifierObservation("stripe_customer_id", "cus_NffrFeUfNV2Hib"),
        IdentifierObservation("email", "Jenny.Rosen@Example.com"),
        IdentifierObservation("phone", "+353 1 555 0100"),
    )
    assert event.traits == {
        "name": "Jenny Rosen",
        "first_name": "Jenny",
        "last_name": "Rosen",
        "email": "Jenny.Rosen@Example.com",
        "phone": "+353 1 555 0100",
        "city": "Dublin",
        "postal_code": "D02 X285",
        "country": "IE",
    }


def test_stripe_payment_intent_succeeded_in_major_units():
    [event] = stripe.map_raw_event(raw(fixture("stripe_payment_intent_succeeded")))
    assert event.type == "payment.succeeded"
    assert event.properties == {
        "payment_id": "pi_3MtwBwLkdIwHu7ix28a3tqPa",
        "amount": 20.0,
        "currency": "EUR",
        "description": "10-class pack",
    }
    assert (event.revenue, event.currency) == (Decimal("20.0"), "EUR")
    assert IdentifierObservation("email", "jenny.rosen@example.com") in event.identifiers


def test_stripe_zero_decimal_currency():
    payload = fixture("stripe_payment_intent_succeeded")
    payload["data"]["object"].update(currency="jpy", amount=1500, amount_received=1500)
    [event] = stripe.map_raw_event(raw(payload))
    assert event.properties["amount"] == 1500.0 and event.revenue == Decimal("1500.0")


def test_stripe_charge_refunded_counts_only_the_new_refund():
    [event] = stripe.map_raw_event(raw(fixture("stripe_charge_refunded")))
    assert event.type == "refund.issued"
    assert event.properties == {
        "refund_id": "re_3MtwBwLkdIwHu7ix0aBcDeFg",
        "amount": 10.0,
        "currency": "EUR",
        "payment_id": "pi_3MtwBwLkdIwHu7ix28a3tqPa",
    }
    assert event.revenue == Decimal("-10.0")


def test_stripe_charge_succeeded_for_a_payment_intent_is_not_counted_twice():
    payload = fixture("stripe_charge_refunded")
    payload["type"] = "charge.succeeded"
    assert stripe.map_raw_event(raw(payload)) == []


def test_stripe_payment_without_amount_is_a_mapping_error():
    payload = fixture("stripe_payment_intent_succeeded")
    del payload["data"]["object"]["amount"], payload["data"]["object"]["amount_received"]
    with pytest.raises(MappingError, match="amount"):
        stripe.map_raw_event(raw(payload))


def test_stripe_unmapped_topics_are_ignored():
    assert stripe.map_raw_event(raw({"id": "evt", "type": "invoice.created", "data": {"object": {"id": "in_1"}}})) == []


def test_shopify_customer_with_marketing_consent():
    [event] = shopify.map_raw_event(raw(fixture("shopify_customers_create"), "customers/create"))
    assert event.type == "customer.created"
    assert event.occurred_at == datetime(2026, 3, 1, 15, 0, tzinfo=UTC)
    assert event.identifiers == (
        IdentifierObservation("shopify_customer_id", "706405506930370084"),
        IdentifierObservation("email", "bob@biller.com", is_verified=True),
        IdentifierObservation("phone", "+16135551111"),
    )
    assert event.verified_traits == frozenset({"email"})
    assert event.traits["city"] == "Ottawa" and event.traits["country"] == "CA"
    assert [(c.purpose, c.is_granted, c.scope) for c in event.consent] == [
        ("email_marketing", True, "confirmed_opt_in"),
        ("sms_marketing", False, "single_opt_in"),
    ]


def test_shopify_order_paid():
    [event] = shopify.map_raw_event(raw(fixture("shopify_orders_paid"), "orders/paid"))
    assert event.type == "order.completed"
    assert event.properties["order_id"] == "820982911946154508" and event.properties["total"] == 403.0
    assert event.properties["products"][0] == {
        "product_id": "632910392",
        "sku": "MAT-BLUE",
        "name": "Yoga mat",
        "quantity": 1,
        "price": 199.0,
    }
    assert (event.revenue, event.currency) == (Decimal("403.0"), "USD")
    assert IdentifierObservation("shopify_order_id", "820982911946154508") in event.identifiers
    assert isinstance(event.consent[0], ConsentObservation) and event.consent[0].is_granted


def test_shopify_refund_is_attributed_through_the_order():
    [event] = shopify.map_raw_event(raw(fixture("shopify_refunds_create"), "refunds/create"))
    assert event.type == "refund.issued"
    assert event.identifiers == (IdentifierObservation("shopify_order_id", "820982911946154508"),)
    assert event.revenue == Decimal("-41.94") and event.properties["amount"] == 41.94


def test_mindbody_client_created():
    [event] = mindbody.map_raw_event(raw(fixture("mindbody_client_created")))
    assert event.type == "customer.created"
    assert event.identifiers == (
        IdentifierObservation("mindbody_client_id", "123:100000009"),
        IdentifierObservation("email", "john.smith@gmail.com"),
        IdentifierObservation("phone", "8055551234"),
    )
    assert event.traits["birthday"] == "1989-07-02" and event.traits["membership_status"] == "Non-Member"
    assert [(c.purpose, c.is_granted) for c in event.consent] == [("email_marketing", True), ("sms_marketing", False)]


def test_mindbody_booking_and_visit():
    [booking] = mindbody.map_raw_event(raw(fixture("mindbody_class_booking_created")))
    assert booking.type == "booking.created"
    assert booking.properties == {
        "booking_id": "11",
        "class_id": "201",
        "class_name": "Beginning Hatha Yoga",
        "starts_at": "2026-05-17T12:00:00Z",
        "ends_at": "2026-05-17T13:00:00Z",
        "location": "1",
        "staff": "Jimmy Martin",
        "site_id": "123",
    }
    [visit] = mindbody.map_raw_event(raw(fixture("mindbody_class_signed_in")))
    assert visit.type == "class.attended" and visit.properties["booking_id"] == "11"
    reserved = fixture("mindbody_class_signed_in")
    reserved["eventData"]["signedInStatus"] = "Reserved"
    assert mindbody.map_raw_event(raw(reserved)) == []


def test_mindbody_cancellation():
    payload = fixture("mindbody_class_booking_created")
    payload["eventId"] = "classRosterBooking.cancelled"
    payload["eventData"]["isLateCancel"] = True
    [event] = mindbody.map_raw_event(raw(payload))
    assert event.type == "booking.cancelled" and event.properties["late_cancel"] is True


def test_mindbody_client_merge_carries_both_ids():
    [event] = mindbody.map_raw_event(raw(fixture("mindbody_client_merged")))
    assert event.type == "customer.merged"
    assert event.identifiers == (
        IdentifierObservation("mindbody_client_id", "123:100000009"),
        IdentifierObservation("mindbody_client_id", "123:100000123"),
    )


def test_standard_webhook_shape():
    [event] = standard_webhooks.map_raw_event(
        raw(
            {
                "type": "payment.succeeded",
                "timestamp": "2026-05-01T10:00:00+02:00",
                "data": {
                    "identifiers": {"email": "a@example.com"},
                    "properties": {"payment_id": "p", "amount": 5, "currency": "EUR"},
                    "consent": {"sms_marketing": False, "bogus": True},
                    "revenue": "5.00",
                    "currency": "eur",
                },
            }
        )
    )
    assert (event.type, event.revenue, event.currency) == ("payment.succeeded", Decimal("5.00"), "EUR")
    assert [(c.purpose, c.is_granted) for c in event.consent] == [("sms_marketing", False)]
    with pytest.raises(MappingError, match="timezone"):
        standard_webhooks.map_raw_event(raw({"type": "x", "timestamp": "2026-05-01T10:00:00", "data": {}}))

"""Signed webhooks from three senders, through the pipeline, into unified profiles."""

import json
from decimal import Decimal

import pytest

from identity.models import Merge
from identity.selectors import identifier_find
from profiles.models import Event, RawEvent
from profiles.processing import raw_events_process
from profiles.sources import source_create
from tests.profiles.webhooks.senders import fixture, mindbody_headers, shopify_headers, stripe_headers

pytestmark = pytest.mark.django_db


def deliver(client, slug, payload, headers_for):
    body = json.dumps(payload).encode()
    response = client.post(f"/webhooks/{slug}/", data=body, content_type="application/json", **headers_for(body))
    assert response.status_code == 200, response.content


def test_stripe_and_shopify_and_mindbody_become_people(client):
    source_create(name="Stripe", kind="stripe", slug="stripe", signing_secret="whsec_s")
    source_create(name="Shop", kind="shopify", slug="shop", signing_secret="shpss")
    source_create(name="Studio", kind="mindbody", slug="studio", signing_secret="mbkey")

    for name in ["stripe_customer_created", "stripe_payment_intent_succeeded", "stripe_charge_refunded"]:
        deliver(client, "stripe", fixture(name), lambda body: stripe_headers(body, "whsec_s"))
    for n, (name, topic) in enumerate(
        [
            ("shopify_customers_create", "customers/create"),
            ("shopify_orders_paid", "orders/paid"),
            ("shopify_refunds_create", "refunds/create"),
        ]
    ):
        deliver(
            client,
            "shop",
            fixture(name),
            lambda body, t=topic, n=n: shopify_headers(body, "shpss", topic=t, event_id=f"e{n}"),
        )
    second = fixture("mindbody_client_created")
    second["messageId"] = "second-client"
    second["eventData"].update(clientId="100000123", email="J.Smith@work.example", mobilePhone="805-555-9999")
    for payload in [
        fixture("mindbody_client_created"),
        second,
        fixture("mindbody_class_booking_created"),
        fixture("mindbody_class_signed_in"),
    ]:
        deliver(client, "studio", payload, lambda body: mindbody_headers(body, "mbkey"))

    raw_events_process()
    assert RawEvent.objects.exclude(status=RawEvent.PROCESSED).count() == 0

    jenny = identifier_find(type_slug="email", raw_value="jenny.rosen@example.com").profile
    assert jenny == identifier_find(type_slug="stripe_customer_id", raw_value="cus_NffrFeUfNV2Hib").profile
    assert jenny.lifetime_revenue == Decimal("10.00")  # 20 paid, 10 refunded

    bob = identifier_find(type_slug="shopify_customer_id", raw_value="706405506930370084").profile
    assert bob.lifetime_revenue == Decimal("361.06")  # 403.00 - 41.94
    assert bob.consent["email_marketing"]["is_granted"] is True
    assert bob.trait_provenance["email"]["is_verified"] is True

    john = identifier_find(type_slug="mindbody_client_id", raw_value="123:100000009").profile
    duplicate = identifier_find(type_slug="mindbody_client_id", raw_value="123:100000123").profile
    assert john != duplicate
    assert sorted(Event.objects.filter(profile=john).values_list("type", flat=True)) == [
        "booking.created",
        "class.attended",
        "customer.created",
    ]

    # The studio merges its two records of John: here they become one person too.
    deliver(client, "studio", fixture("mindbody_client_merged"), lambda body: mindbody_headers(body, "mbkey"))
    raw_events_process()
    merged = identifier_find(type_slug="mindbody_client_id", raw_value="123:100000123").profile
    assert merged == identifier_find(type_slug="mindbody_client_id", raw_value="123:100000009").profile
    assert identifier_find(type_slug="email", raw_value="j.smith@work.example").profile == merged
    merge = Merge.objects.get()
    assert merge.evidence["external_id"] == "Q2mXc9TzLpRs4Vb7Nd1Ke8"
    assert Event.objects.filter(profile=merged).count() == 5

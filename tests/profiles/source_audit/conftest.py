"""A world of three sources fed through the real endpoints and the real pipeline.

- bookings (Standard Webhooks): bookings for a, b, c and d@example.com, one cancellation, one event
  breaking its contract, one with a timestamp without a timezone; a property no contract declares,
  a first name and an email marketing grant.
- payments (Stripe): customers a, b, c and e@example.com, and one payment of 20.00 by a.
- web (tracking API): five messages (one timestamp aware, one naive, one missing, one in the
  future, and one the same happening as the first under another messageId), the first one sent
  twice.

A published segment of people who booked is synced to a destination, so bookings and everyone it
reaches are "activated".
"""

import base64
import json
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from activations.destinations import destination_save
from activations.models import Sync
from profiles.processing import raw_events_process
from profiles.sources import source_create
from segments.membership import segment_memberships_refresh_all
from segments.services import segment_create
from tests.profiles.webhooks.senders import fixture, standard_headers, stripe_headers

BOOKINGS_SECRET = "whsec_" + base64.b64encode(b"bookings-signing-key-0123456789").decode()
PAYMENTS_SECRET = "whsec_payments"


def iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def booking(n, email, *, event_type="booking.created", timestamp=None, booking_id=True, **data):
    properties = {"booking_id": f"bk-{n}", "room": "studio-1"} if booking_id else {"room": "studio-1"}
    return {
        "type": event_type,
        "timestamp": timestamp or iso(timezone.now() - timedelta(days=1)),
        "data": {"identifiers": {"email": email}, "properties": properties, **data},
    }


def stripe_customer(n, email):
    payload = fixture("stripe_customer_created")
    payload["id"] = f"evt_customer_{n}"
    payload["data"]["object"].update(id=f"cus_{n}", email=email, phone=None, name=f"Person {n}")
    return payload


def stripe_payment(customer, email):
    payload = fixture("stripe_payment_intent_succeeded")
    payload["id"] = "evt_payment_1"
    payload["data"]["object"].update(customer=customer, receipt_email=email)
    return payload


@pytest.fixture
def deliver(client):
    def deliver(slug, payload, headers_for):
        body = json.dumps(payload).encode()
        response = client.post(f"/webhooks/{slug}/", data=body, content_type="application/json", **headers_for(body))
        assert response.status_code == 200, response.content

    return deliver


@pytest.fixture
def track(client):
    cache.clear()

    def track(write_key, message):
        auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
        response = client.post(
            "/v1/track" if message["type"] == "track" else f"/v1/{message['type']}",
            data=json.dumps(message),
            content_type="application/json",
            HTTP_AUTHORIZATION=auth,
        )
        assert response.status_code == 200, response.content

    yield track


@pytest.fixture
def audit_world(db, deliver, track):
    bookings, _ = source_create(
        name="Bookings",
        kind="standard_webhook",
        slug="bookings",
        signing_secret=BOOKINGS_SECRET,
        freshness_sla_minutes=15,
    )
    payments, _ = source_create(name="Payments", kind="stripe", slug="payments", signing_secret=PAYMENTS_SECRET)
    web, credentials = source_create(name="Web", kind="tracking", slug="web")

    def to_bookings(n, payload):
        deliver("bookings", payload, lambda body: standard_headers(body, BOOKINGS_SECRET, message_id=f"msg-{n}"))

    to_bookings(1, booking(1, "a@example.com", traits={"first_name": "Ada"}, consent={"email_marketing": True}))
    to_bookings(2, booking(2, "b@example.com"))
    to_bookings(3, booking(3, "c@example.com"))
    to_bookings(4, booking(4, "d@example.com"))
    to_bookings(5, booking(1, "a@example.com", event_type="booking.cancelled"))
    to_bookings(6, booking(6, "b@example.com", booking_id=False))  # contract: booking_id is required
    to_bookings(7, booking(7, "c@example.com", timestamp="2026-01-01T10:00:00"))  # no timezone: mapping fails

    def to_payments(payload):
        deliver("payments", payload, lambda body: stripe_headers(body, PAYMENTS_SECRET))

    for n, email in enumerate(["a@example.com", "b@example.com", "c@example.com", "e@example.com"], start=1):
        to_payments(stripe_customer(n, email))
    to_payments(stripe_payment("cus_1", "a@example.com"))

    now = timezone.now()
    first = {
        "type": "track",
        "event": "Signed Up",
        "userId": "u1",
        "messageId": "web-1",
        "timestamp": iso(now - timedelta(hours=2)),
        "context": {"traits": {"email": "a@example.com"}, "consent": {"categoryPreferences": {"advertising": True}}},
    }
    key = credentials.write_key
    track(key, first)
    track(key, first)  # a redelivery: stored once, counted once
    track(
        key,
        {
            "type": "page",
            "name": "Home",
            "anonymousId": "anon-2",
            "messageId": "web-2",
            "timestamp": "2026-01-01T10:00:00",
        },
    )  # naive
    track(key, {"type": "identify", "userId": "u3", "messageId": "web-3"})  # no timestamp
    track(
        key,
        {
            "type": "track",
            "event": "Signed Up",
            "userId": "u1",
            "messageId": "web-4",
            "timestamp": iso(now + timedelta(days=2)),
        },
    )  # in the future
    track(key, {**first, "messageId": "web-5", "context": {}})  # the same happening again, another id

    raw_events_process()

    destination = destination_save(
        name="Mailer",
        slug="mailer",
        kind="webhook",
        base_url="http://127.0.0.1:9/hook",
        fields=[{"name": "email", "source": "identifier:email"}],
        idempotency_key="email",
        operations=["upsert", "remove", "delete"],
        consent_purpose="email_marketing",
        pii_mode="cleartext",
        secrets={"signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
        actor="test",
    )
    segment = segment_create(
        slug="bookers", name="Bookers", definition={"event": "booking.created"}, note="", author="test"
    )
    Sync.objects.create(name="Bookers", slug="bookers-mailer", segment=segment, destination=destination, mode="upsert")
    segment_memberships_refresh_all()
    return {"bookings": bookings, "payments": payments, "web": web, "destination": destination}

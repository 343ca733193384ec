import json
import threading
import time

import pytest
from django.db import connection, connections
from django.test import Client

from profiles.models import RawEvent
from profiles.sources import source_create
from tests.profiles.webhooks.senders import fixture, mindbody_headers, shopify_headers, standard_headers, stripe_headers

pytestmark = pytest.mark.django_db

STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def sources():
    return {
        "stripe": source_create(name="Stripe", kind="stripe", slug="stripe", signing_secret="whsec_test_stripe")[0],
        "shopify": source_create(name="Shop", kind="shopify", slug="shop", signing_secret="shpss_app_secret")[0],
        "mindbody": source_create(name="Studio", kind="mindbody", slug="studio", signing_secret="mb-signature-key")[0],
        "standard": source_create(
            name="Booking", kind="standard_webhook", slug="booking", signing_secret=STANDARD_SECRET
        )[0],
    }


def post(client, slug, body: bytes, headers, content_type="application/json"):
    return client.post(f"/webhooks/{slug}/", data=body, content_type=content_type, **headers)


def stripe_request(name="stripe_customer_created", **overrides):
    body = json.dumps({**fixture(name), **overrides}).encode()
    return body, stripe_headers(body, "whsec_test_stripe")


def test_stripe_event_is_stored_once_with_its_id_and_type(client, sources):
    body, headers = stripe_request()
    response = post(client, "stripe", body, headers)
    assert response.status_code == 200 and response.json() == {"received": True}
    raw = RawEvent.objects.get()
    assert (raw.source, raw.external_id, raw.topic, raw.status) == (
        sources["stripe"],
        "evt_1NG8Du2eZvKYlo2CUI79vXWy",
        "customer.created",
        "pending",
    )
    # A redelivery answers 2xx and stores nothing new.
    assert post(client, "stripe", body, headers).status_code == 200
    assert RawEvent.objects.count() == 1


def test_stripe_with_a_rotated_secret_accepts_old_and_new(client, sources):
    from profiles.sources import source_rotate_credentials

    source_rotate_credentials(source=sources["stripe"], signing_secret="whsec_new")
    body, old_headers = stripe_request()
    assert post(client, "stripe", body, old_headers).status_code == 200
    body2, _ = stripe_request(id="evt_second")
    assert post(client, "stripe", body2, stripe_headers(body2, "whsec_new")).status_code == 200
    assert RawEvent.objects.count() == 2


@pytest.mark.parametrize(
    "headers, status, code",
    [
        ({}, 401, "invalid_signature"),
        ({"HTTP_STRIPE_SIGNATURE": "t=1,v1=00"}, 400, "stale_timestamp"),
        ("wrong-secret", 401, "invalid_signature"),
        ("stale", 400, "stale_timestamp"),
        ("future", 400, "stale_timestamp"),
    ],
)
def test_stripe_bad_signatures_store_nothing(client, sources, headers, status, code):
    body = json.dumps(fixture("stripe_customer_created")).encode()
    if headers == "wrong-secret":
        headers = stripe_headers(body, "whsec_attacker")
    elif headers == "stale":
        headers = stripe_headers(body, "whsec_test_stripe", timestamp=int(time.time()) - 400)
    elif headers == "future":
        headers = stripe_headers(body, "whsec_test_stripe", timestamp=int(time.time()) + 400)
    response = post(client, "stripe", body, headers)
    assert response.status_code == status and response.json()["code"] == code
    assert not RawEvent.objects.exists()


def test_shopify_dedupes_on_event_id_and_keeps_its_headers(client, sources):
    body = json.dumps(fixture("shopify_orders_paid")).encode()
    headers = shopify_headers(
        body, "shpss_app_secret", topic="orders/paid", event_id="98880550-7158-44d4-b7cd-2c97c8a091b5"
    )
    assert post(client, "shop", body, headers).status_code == 200
    assert post(client, "shop", body, headers).status_code == 200
    raw = RawEvent.objects.get()
    assert (raw.external_id, raw.topic) == ("98880550-7158-44d4-b7cd-2c97c8a091b5", "orders/paid")
    assert raw.headers["X-Shopify-Shop-Domain"] == "studio.myshopify.com"
    tampered = body.replace(b"403.00", b"4.00")
    assert post(client, "shop", tampered, headers).status_code == 401


def test_shopify_needs_topic_and_event_id(client, sources):
    body = json.dumps(fixture("shopify_customers_create")).encode()
    headers = shopify_headers(body, "shpss_app_secret", topic="customers/create", event_id="")
    headers.pop("HTTP_X_SHOPIFY_EVENT_ID")
    response = post(client, "shop", body, headers)
    assert response.status_code == 400 and response.json()["code"] == "missing_event_id"
    assert not RawEvent.objects.exists()


def test_mindbody_dedupes_on_message_id(client, sources):
    body = json.dumps(fixture("mindbody_client_created")).encode()
    headers = mindbody_headers(body, "mb-signature-key")
    assert post(client, "studio", body, headers).status_code == 200
    assert post(client, "studio", body, headers).status_code == 200
    assert list(RawEvent.objects.values_list("external_id", "topic")) == [("ASbBtJ8Q7SNJZ7yWgKjiE6", "client.created")]
    assert post(client, "studio", body, mindbody_headers(body, "other-key")).status_code == 401


def test_standard_webhooks(client, sources):
    payload = {
        "type": "booking.created",
        "timestamp": "2026-05-01T10:00:00Z",
        "data": {"identifiers": {"email": "kim@example.com"}, "properties": {"booking_id": "b-1"}},
    }
    body = json.dumps(payload).encode()
    headers = standard_headers(body, STANDARD_SECRET, message_id="msg_2KWPBgLlAfxdpx2AI54pPJ85f4W")
    assert post(client, "booking", body, headers).status_code == 200
    assert post(client, "booking", body, headers).status_code == 200
    raw = RawEvent.objects.get()
    assert (raw.external_id, raw.topic) == ("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", "booking.created")
    stale = standard_headers(body, STANDARD_SECRET, message_id="msg_x", timestamp=int(time.time()) - 600)
    assert post(client, "booking", body, stale).status_code == 400


def test_malformed_json_is_400_and_stores_nothing(client, sources):
    body = b'{"id": "evt_1", '
    response = post(client, "stripe", body, stripe_headers(body, "whsec_test_stripe"))
    assert response.status_code == 400 and response.json()["code"] == "invalid_json"
    assert not RawEvent.objects.exists()


def test_unknown_source_404_wrong_method_405_wrong_type_415_oversize_413(client, sources, settings):
    body, headers = stripe_request()
    assert post(client, "nope", body, headers).status_code == 404
    assert client.get("/webhooks/stripe/").status_code == 405
    assert post(client, "stripe", body, headers, content_type="text/plain").status_code == 415
    settings.WEBHOOK_MAX_BODY_BYTES = 100
    assert post(client, "stripe", body, headers).status_code == 413
    tracking, _ = source_create(name="SDK", kind="tracking", slug="sdk")
    settings.WEBHOOK_MAX_BODY_BYTES = 1_000_000
    assert post(client, "sdk", body, headers).status_code == 404
    assert not RawEvent.objects.exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_ten_concurrent_redeliveries_store_one_row(sources):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL; SQLite serialises them")
    body, headers = stripe_request()
    statuses = []

    def deliver():
        try:
            statuses.append(post(Client(), "stripe", body, headers).status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=deliver) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert statuses == [200] * 10
    assert RawEvent.objects.filter(external_id="evt_1NG8Du2eZvKYlo2CUI79vXWy").count() == 1

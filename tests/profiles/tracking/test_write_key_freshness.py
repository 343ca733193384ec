"""A change to a source's credentials, active flag or rate limit applies to the very next request,
whichever path made it (service, back-office page, admin, another machine writing the database).

Each test first sends with the old state, so a process-level cache, if there were one, would hold it.
"""

import base64
import json
import re

import pytest
from django.core.cache import cache
from django.forms.models import model_to_dict
from django.urls import reverse

from profiles.models import RawEvent, Source
from profiles.sources import source_create, source_retire_old_secrets, source_rotate_credentials
from tests.profiles.webhooks.senders import fixture, stripe_headers

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_rate_counters():
    cache.clear()


@pytest.fixture
def tracking_source():
    source, credentials = source_create(name="Web SDK", kind="tracking")
    return source, credentials.write_key


def track(client, write_key, message_id):
    body = {"type": "track", "event": "Class Booked", "userId": "u1", "messageId": message_id}
    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    return client.post("/v1/track", data=json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=auth)


def stored() -> set[str]:
    return set(RawEvent.objects.values_list("external_id", flat=True))


def test_a_write_key_rotated_through_the_service_is_refused_on_the_next_request(client, tracking_source):
    source, old_key = tracking_source
    assert track(client, old_key, "before").status_code == 200

    new_key = source_rotate_credentials(source=source).write_key

    response = track(client, old_key, "after-old")
    assert response.status_code == 401 and response.json()["code"] == "invalid_write_key"
    assert track(client, new_key, "after-new").status_code == 200
    assert stored() == {"before", "after-new"}


def test_a_write_key_rotated_on_the_sources_page_is_refused_on_the_next_request(client, make_user, tracking_source):
    source, old_key = tracking_source
    assert track(client, old_key, "before").status_code == 200
    client.force_login(make_user("integration_engineer"))

    page = client.post(reverse("profiles:source_rotate", args=[source.slug])).content.decode()
    new_key = re.search(r'data-testid="write-key">([^<]+)<', page).group(1)

    assert track(client, old_key, "after-old").status_code == 401
    assert track(client, new_key, "after-new").status_code == 200
    assert stored() == {"before", "after-new"}


def admin_save(admin_client, source: Source, **changes):
    """Save the source's admin change form, as a person would, with these fields changed."""
    data = {name: value for name, value in model_to_dict(source).items() if value is not None}
    data.update(identifier_types=[], **changes)
    if not data.get("is_active"):
        data.pop("is_active")  # an unticked checkbox is not sent
    response = admin_client.post(reverse("admin:profiles_source_change", args=[source.pk]), data)
    assert response.status_code == 302, response.content.decode()[:2000]


def test_a_source_deactivated_in_the_admin_is_refused_on_the_next_request(client, admin_client, tracking_source):
    source, key = tracking_source
    assert track(client, key, "before").status_code == 200

    admin_save(admin_client, source, is_active=False)

    assert Source.objects.get(pk=source.pk).is_active is False
    response = track(client, key, "after")
    assert response.status_code == 401 and response.json()["code"] == "invalid_write_key"
    assert stored() == {"before"}


def test_a_source_deactivated_by_another_machine_is_refused_on_the_next_request(client, tracking_source):
    source, key = tracking_source
    assert track(client, key, "before").status_code == 200

    # Written straight to the database, as another machine or a shell would: no service in this
    # process hears of it.
    Source.objects.filter(pk=source.pk).update(is_active=False)

    assert track(client, key, "after").status_code == 401
    assert stored() == {"before"}


def test_a_rate_limit_lowered_in_the_admin_applies_to_the_next_request(client, admin_client, tracking_source):
    source, key = tracking_source
    assert track(client, key, "before").status_code == 200  # the default limit: 50,000 a second

    admin_save(admin_client, source, rate_limit_per_second=1)

    responses = [track(client, key, f"after-{n}").status_code for n in range(3)]
    # At most one message a second now: whatever second the three fall in, one of them is refused.
    assert 429 in responses
    assert stored() == {"before"} | {f"after-{n}" for n, status in enumerate(responses) if status == 200}


def test_retired_signing_secrets_are_refused_on_the_next_request(client):
    source, _ = source_create(name="Stripe", kind="stripe", slug="stripe", signing_secret="whsec_old")
    source_rotate_credentials(source=source, signing_secret="whsec_new")

    def deliver(event_id, secret):
        body = json.dumps({**fixture("stripe_customer_created"), "id": event_id}).encode()
        return client.post(
            "/webhooks/stripe/", data=body, content_type="application/json", **stripe_headers(body, secret)
        )

    assert deliver("evt_old_before", "whsec_old").status_code == 200  # both secrets work during a rotation

    source_retire_old_secrets(source=source)

    response = deliver("evt_old_after", "whsec_old")
    assert response.status_code == 401 and response.json()["code"] == "invalid_signature"
    assert deliver("evt_new_after", "whsec_new").status_code == 200
    assert stored() == {"evt_old_before", "evt_new_after"}

"""Every access to cleartext PII, every merge, unmerge and privacy request writes an audit entry,
and no log record carries the personal data or the secrets the journey used.

One journey through the real interfaces: people arrive through the tracking API (write key) and a
Stripe webhook (signing secret); staff then read a raw payload, reveal PII on the page and through
the API (token), approve a merge, unmerge it, and file an access and a deletion request that runs
to completion. Every logger is captured at DEBUG (django.request and django.db included) and every
record, its arguments and its traceback are searched for the seeded emails and phones and the
secrets.
"""

import base64
import json
import logging

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from cdp_site.models import ApiToken, AuditEntry
from identity.models import IdentityLink, Merge
from identity.services import profiles_link
from profiles.models import RawEvent
from profiles.processing import raw_events_process
from profiles.sources import source_create
from tests.identity.test_services import profile_of
from tests.profiles.webhooks.senders import fixture, stripe_headers

pytestmark = pytest.mark.django_db

ADA_EMAIL, ADA_PHONE = "ada.lovelace.seeded@example.com", "+14155550199"
BO_EMAIL = "bo.seeded@example.org"
JENNY_EMAIL, JENNY_PHONE = "jenny.seeded@example.net", "+353 1 555 0142"
SIGNING_SECRET = "whsec_seeded-signing-secret-0123456789"
PASSWORD = "pw-123-secret"


def needles(*secrets: str) -> list[str]:
    """What must never appear in a log: each email (any case), each phone in the forms a log would
    show it (as typed, E.164, national digits), and the secrets."""
    found = [ADA_EMAIL, BO_EMAIL, JENNY_EMAIL, ADA_PHONE, ADA_PHONE[2:], "+35315550142", "15550142", JENNY_PHONE]
    found += [email.split("@")[0] for email in (ADA_EMAIL, BO_EMAIL, JENNY_EMAIL)]
    return [needle.lower() for needle in found + [secret for secret in secrets if secret]]


def record_text(record: logging.LogRecord) -> str:
    parts = [record.getMessage(), repr(record.args), record.exc_text or ""]
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    standard = set(vars(logging.makeLogRecord({})))
    parts += [repr(value) for key, value in vars(record).items() if key not in standard]  # `extra=` fields
    return "\n".join(parts).lower()


@pytest.fixture
def every_logger_at_debug(caplog):
    caplog.set_level(logging.DEBUG)
    for name in ["django", "django.request", "django.db", "django.db.backends", "django.security", "django-q"] + list(
        logging.root.manager.loggerDict
    ):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def identify(client, write_key, **message):
    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    body = json.dumps({"type": "identify", **message})
    response = client.post("/v1/identify", data=body, content_type="application/json", HTTP_AUTHORIZATION=auth)
    assert response.status_code == 200, response.content


def test_pii_access_merges_unmerges_and_privacy_requests_are_audited_and_logs_stay_clean(
    roles, make_user, every_logger_at_debug, django_capture_on_commit_callbacks
):
    client = Client()
    _, tracking = source_create(name="Web SDK", kind="tracking")
    source_create(name="Stripe", kind="stripe", slug="stripe", signing_secret=SIGNING_SECRET)

    # -- people arrive through the real ingestion --------------------------------------------------
    identify(
        client,
        tracking.write_key,
        userId="member-ada",
        messageId="m-ada",
        traits={"email": ADA_EMAIL, "phone": ADA_PHONE, "firstName": "Ada"},
    )
    identify(client, tracking.write_key, userId="member-bo", messageId="m-bo", traits={"email": BO_EMAIL})
    stripe = fixture("stripe_customer_created")
    stripe["data"]["object"].update(email=JENNY_EMAIL, phone=JENNY_PHONE)
    body = json.dumps(stripe).encode()
    response = client.post(
        "/webhooks/stripe/", data=body, content_type="application/json", **stripe_headers(body, SIGNING_SECRET)
    )
    assert response.status_code in (200, 202), response.content
    # A forged delivery and a wrong write key: refused, and logged without the body or the key.
    forged = client.post(
        "/webhooks/stripe/", data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE="t=1,v1=0"
    )
    assert forged.status_code in (400, 401)
    raw_events_process()
    ada, bo = profile_of("email", ADA_EMAIL), profile_of("email", BO_EMAIL)
    assert profile_of("email", JENNY_EMAIL) is not None

    # -- staff: guest services by page and by token, a privacy officer by token --------------------
    guest = make_user("guest_services")
    page = Client()
    assert page.post("/accounts/login/", {"username": guest.username, "password": PASSWORD}).status_code == 302
    guest_token = ApiToken.issue(user=guest)[1]
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {guest_token}")
    officer_token = ApiToken.issue(user=make_user("privacy_officer"))[1]
    officer = APIClient()
    officer.credentials(HTTP_AUTHORIZATION=f"Token {officer_token}")
    engineer = Client()
    engineer.force_login(make_user("integration_engineer"))
    audited_before = AuditEntry.objects.count()

    def new_actions() -> list[str]:
        return list(AuditEntry.objects.order_by("id").values_list("action", flat=True)[audited_before:])

    # Cleartext PII: a raw payload, the Reveal button, the API's ?reveal=1.
    raw = RawEvent.objects.get(external_id="m-ada")
    assert engineer.get(reverse("profiles:raw_event_detail", args=[raw.pk])).status_code == 200
    assert page.post(reverse("profile_reveal", args=[ada.pk]), {"where": "profile"}).status_code == 200
    revealed = api.get(f"/api/v1/profiles/{ada.pk}/", {"reveal": "1"})
    assert revealed.status_code == 200 and ADA_EMAIL in json.dumps(revealed.json())
    assert new_actions() == ["raw_event.view", "pii.reveal", "pii.reveal"]

    # A merge approved through the API, then undone.
    outcome = profiles_link(
        profile_a_id=ada.pk,
        profile_b_id=bo.pk,
        kind=IdentityLink.PROBABILISTIC,
        rule="probabilistic",
        confidence=0.7,
        evidence={"match_run_id": 1},
        activate=False,
        actor="rule:probabilistic",
    )
    assert (
        api.post(
            f"/api/v1/identity-links/{outcome.link_id}/approve/", {"note": "same person"}, format="json"
        ).status_code
        == 200
    )
    merge = Merge.objects.get(link_id=outcome.link_id)
    assert api.post(f"/api/v1/merges/{merge.pk}/unmerge/", {"reason": "two people"}, format="json").status_code == 201
    assert new_actions()[3:] == ["merge.approve", "merge.unmerge"]

    # Privacy requests: an access request and a deletion that runs to completion.
    with django_capture_on_commit_callbacks(execute=True):
        for kind, email in (("access", ADA_EMAIL), ("deletion", BO_EMAIL)):
            response = officer.post(
                "/api/v1/privacy-requests/",
                {"kind": kind, "regulation": "gdpr", "identifiers": [f"email:{email}"]},
                format="json",
            )
            assert response.status_code == 201, response.content
    actions = new_actions()[5:]
    assert {"privacy.access_request", "privacy.deletion_request", "privacy.deletion_completed"} <= set(actions)

    # Refused credentials are logged by django.request without the token or the key.
    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION=f"Token {guest_token}x")
    assert wrong.get("/api/v1/profiles/").status_code == 401
    identify(client, tracking.write_key, userId="member-ada", messageId="m-ada-2", traits={"email": ADA_EMAIL})
    bad_key = client.post(
        "/v1/identify",
        data=json.dumps({"userId": "x", "traits": {"email": ADA_EMAIL}}),
        content_type="application/json",
        HTTP_AUTHORIZATION="Basic " + base64.b64encode(f"{tracking.write_key}x:".encode()).decode(),
    )
    assert bad_key.status_code == 401
    raw_events_process()

    # Every entry the journey wrote says who and what, never the values.
    for entry in AuditEntry.objects.all():
        text = (entry.summary + json.dumps(entry.detail)).lower()
        leaked = [needle for needle in needles(tracking.write_key, SIGNING_SECRET, guest_token) if needle in text]
        assert not leaked, f"audit entry {entry.action} holds {leaked}"

    records = every_logger_at_debug.records
    assert records, "nothing was captured: the capture is broken, not the logs clean"
    assert any(r.name == "django.request" for r in records)  # the 401s and 403s above were logged
    secrets = (tracking.write_key, SIGNING_SECRET, guest_token, officer_token, PASSWORD)
    for record in records:
        text = record_text(record)
        leaked = [needle for needle in needles(*secrets) if needle in text]
        assert not leaked, f"{record.name} {record.levelname} logged {leaked}: {record.getMessage()[:300]}"

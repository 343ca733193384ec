"""Recording consent: every channel carries its source, the summary follows the latest capture, the
records are append-only, and the staff/API service audits and re-evaluates segments."""

import base64
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from activations.models import SuppressionApplied
from cdp_site.models import AuditEntry
from consent.models import ConsentRecord
from consent.propagation import propagate_withdrawal
from consent.recording import API, STAFF, ConsentInvalid, channel_source, consent_record
from identity.selectors import identifier_find
from profiles.models import Profile, RawEvent, Source
from profiles.processing import raw_events_process
from profiles.services.recompute import profile_recompute
from profiles.sources import source_create
from segments.models import SegmentMembership
from tests.activations import conftest as activations_fixtures
from tests.profiles.webhooks.senders import fixture, shopify_headers

pytestmark = pytest.mark.django_db

# Fixtures of the activations suite: people ingested through the real pipeline, audiences, destinations.
audience = activations_fixtures.audience
ingest = activations_fixtures.ingest


def test_staff_and_api_records_carry_their_own_source_and_recorder(ingest):
    ana = ingest(email="ana@example.com", consent={"email_marketing": True})
    staff = consent_record(profile=ana, purpose="sms_marketing", is_granted=True, channel=STAFF, actor="user:olga")
    api = consent_record(
        profile=ana,
        purpose="analytics",
        is_granted=False,
        channel=API,
        actor="api:crm-bot",
        scope="cookie-banner-v3",
        evidence={"form": "preferences"},
    )
    assert (staff.source.slug, staff.source.name) == ("back-office-staff", "Back-office staff")
    assert (api.source.slug, api.source.name) == ("rest-api", "REST API")
    # Existing kinds only; switched off and without a write key, so nothing can ingest through them.
    for source in (staff.source, api.source):
        assert source.kind == Source.TRACKING and not source.is_active and not source.write_key_hash
    assert staff.evidence == {"recorded_by": "user:olga"}
    assert api.evidence == {"form": "preferences", "recorded_by": "api:crm-bot"}
    assert api.scope == "cookie-banner-v3"
    # A caller cannot pretend to be someone else.
    forged = consent_record(
        profile=ana, purpose="analytics", is_granted=True, channel=API, actor="api:x", evidence={"recorded_by": "ceo"}
    )
    assert forged.evidence["recorded_by"] == "api:x"
    assert channel_source(STAFF) == staff.source  # one source per channel, reused
    profile = Profile.objects.get(pk=ana)
    assert profile.consent["sms_marketing"]["is_granted"] is True
    assert profile.consent["sms_marketing"]["source_id"] == staff.source_id
    assert profile.consent["email_marketing"]["is_granted"] is True  # untouched


def test_an_audit_entry_per_record_without_personal_data(ingest):
    ana = ingest(email="ana@example.com")
    record = consent_record(
        profile=ana,
        purpose="email_marketing",
        is_granted=False,
        channel=STAFF,
        actor="user:olga",
        evidence={"note": "called ana@example.com back"},
    )
    entry = AuditEntry.objects.get(action="consent.record")
    assert (entry.actor, entry.target_type, entry.target_id) == ("user:olga", "consent.consentrecord", str(record.pk))
    assert entry.detail == {
        "profile_id": ana,
        "purpose": "email_marketing",
        "is_granted": False,
        "channel": "staff",
        "source_id": record.source_id,
        "in_force": True,
    }
    assert "example.com" not in entry.summary + json.dumps(entry.detail)


def test_a_late_older_withdrawal_does_not_override_a_newer_grant(ingest, send):
    """The pipeline's rule (latest capture per purpose wins), through the service and the pipeline."""
    now = timezone.now()
    ana = ingest(email="ana@example.com")
    consent_record(profile=ana, purpose="email_marketing", is_granted=True, channel=API, actor="api:a", captured_at=now)
    late = consent_record(
        profile=ana,
        purpose="email_marketing",
        is_granted=False,
        channel=API,
        actor="api:a",
        captured_at=now - timedelta(hours=1),
    )
    profile = Profile.objects.get(pk=ana)
    assert profile.consent["email_marketing"]["is_granted"] is True
    assert profile.consent["email_marketing"]["captured_at"] == now.isoformat()
    assert ConsentRecord.objects.filter(profile_id=ana, purpose="email_marketing").count() == 2
    assert AuditEntry.objects.get(target_id=str(late.pk)).detail["in_force"] is False
    # Rebuilt from the records (as after an unmerge) it decides the same.
    assert profile_recompute(profile_id=ana).consent == profile.consent
    # Nothing is removed anywhere: the newer grant is in force.
    [marker] = propagate_withdrawal(late)
    assert (marker.status, marker.destination_id) == (SuppressionApplied.SUPERSEDED, None)

    # The pipeline decides the same way for the same two facts.
    ben = ingest(email="ben@example.com")
    ids = [("email", "ben@example.com")]
    send({"type": None, "at": now.isoformat(), "ids": ids, "consent": [["email_marketing", True]]})
    send(
        {
            "type": None,
            "at": (now - timedelta(hours=1)).isoformat(),
            "ids": ids,
            "consent": [["email_marketing", False]],
        }
    )
    raw_events_process()
    assert Profile.objects.get(pk=ben).consent["email_marketing"]["is_granted"] is True
    # ... and a newer withdrawal through the service wins over the pipeline's grant.
    consent_record(profile=ben, purpose="email_marketing", is_granted=False, channel=STAFF, actor="user:olga")
    assert Profile.objects.get(pk=ben).consent["email_marketing"]["is_granted"] is False


@pytest.mark.parametrize(
    "change, field",
    [
        ({"purpose": "carrier_pigeon"}, "purpose"),
        ({"captured_at": "future"}, "captured_at"),
        ({"captured_at": "naive"}, "captured_at"),
        ({"scope": "x" * 201}, "scope"),
        ({"evidence": ["not", "an", "object"]}, "evidence"),
        ({"evidence": {"blob": "x" * 5000}}, "evidence"),
        ({"profile": 999_999}, "profile"),
    ],
)
def test_invalid_input_names_the_field_and_writes_nothing(ingest, change, field):
    ana = ingest(email="ana@example.com")
    values = {"profile": ana, "purpose": "email_marketing", "is_granted": False, "channel": API, "actor": "api:a"}
    if change.get("captured_at") == "future":
        change = {"captured_at": timezone.now() + timedelta(hours=1)}
    elif change.get("captured_at") == "naive":
        change = {"captured_at": timezone.now().replace(tzinfo=None)}
    values.update(change)
    before = ConsentRecord.objects.count()
    with pytest.raises(ConsentInvalid) as raised:
        consent_record(**values)
    assert list(raised.value.errors) == [field]
    assert ConsentRecord.objects.count() == before
    assert not AuditEntry.objects.filter(action="consent.record").exists()


def test_deleted_profiles_are_refused_and_merged_ids_record_on_the_survivor(ingest):
    first = ingest(email="ana@example.com")
    second = ingest(phone="+14155550100")
    both = ingest(email="ana@example.com", phone="+14155550100")
    absorbed = first if both == second else second
    assert Profile.objects.get(pk=absorbed).status == Profile.MERGED
    record = consent_record(profile=absorbed, purpose="email_marketing", is_granted=True, channel=API, actor="api:a")
    assert record.profile_id == both
    assert Profile.objects.get(pk=both).consent["email_marketing"]["is_granted"] is True

    gone = ingest(email="gone@example.com")
    Profile.objects.filter(pk=gone).update(status=Profile.DELETED)
    with pytest.raises(ConsentInvalid) as raised:
        consent_record(profile=gone, purpose="email_marketing", is_granted=True, channel=API, actor="api:a")
    assert list(raised.value.errors) == ["profile"]


def test_segment_memberships_follow_the_recorded_consent(ingest, audience, django_capture_on_commit_callbacks):
    ana = ingest(email="ana@example.com", consent={"email_marketing": True})
    segment = audience({"all": [{"consent": "email_marketing", "granted": True}]})
    assert SegmentMembership.objects.filter(segment=segment, profile_id=ana, exited_at__isnull=True).exists()
    with django_capture_on_commit_callbacks(execute=True):
        consent_record(profile=ana, purpose="email_marketing", is_granted=False, channel=STAFF, actor="user:olga")
    assert not SegmentMembership.objects.filter(segment=segment, profile_id=ana, exited_at__isnull=True).exists()
    with django_capture_on_commit_callbacks(execute=True):
        consent_record(profile=ana, purpose="email_marketing", is_granted=True, channel=STAFF, actor="user:olga")
    assert SegmentMembership.objects.filter(segment=segment, profile_id=ana, exited_at__isnull=True).exists()


# -- the ingestion channels carry their source too ---------------------------------------------------


def _basic(write_key):
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()


def test_tracking_webhook_and_csv_consent_carry_their_source(client, tmp_path):
    web, credentials = source_create(name="Web SDK", kind="tracking")
    shop, _ = source_create(name="Shop", kind="shopify", slug="shop", signing_secret="shpss")
    backfill, _ = source_create(name="Backfill", kind="csv", slug="backfill")

    message = {
        "type": "identify",
        "userId": "u-ana",
        "messageId": "m-consent-1",
        "traits": {"email": "ana@example.com"},
        "context": {"consent": {"categoryPreferences": {"Email": False, "Analytics": True}}},
        "timestamp": timezone.now().isoformat(),
    }
    response = client.post(
        "/v1/identify",
        data=json.dumps(message),
        content_type="application/json",
        HTTP_AUTHORIZATION=_basic(credentials.write_key),
    )
    assert response.status_code == 200, response.content

    customer = fixture("shopify_customers_create")
    customer["email_marketing_consent"] = {"state": "unsubscribed", "opt_in_level": "single_opt_in"}
    body = json.dumps(customer).encode()
    response = client.post(
        "/webhooks/shop/",
        data=body,
        content_type="application/json",
        **shopify_headers(body, "shpss", topic="customers/update", event_id="e-consent"),
    )
    assert response.status_code == 200, response.content

    path = tmp_path / "members.csv"
    path.write_text("Email,Newsletter\ncy@example.com,no\n", encoding="utf-8")
    call_command(
        "import_csv",
        str(path),
        "--source",
        "backfill",
        "--no-progress",
        "--map",
        "Email=identifier:email",
        "--map",
        "Newsletter=consent:email_marketing",
    )
    raw_events_process()
    assert not RawEvent.objects.exclude(status=RawEvent.PROCESSED).exists(), list(
        RawEvent.objects.values_list("error", flat=True)
    )

    def records(email):
        profile = identifier_find(type_slug="email", raw_value=email).profile
        return sorted(
            (r.purpose, r.is_granted, r.source_id, r.raw_event.source_id)
            for r in ConsentRecord.objects.filter(profile=profile).select_related("raw_event")
        )

    assert records("ana@example.com") == [
        ("analytics", True, web.pk, web.pk),
        ("email_marketing", False, web.pk, web.pk),
    ]
    bob = records("bob@biller.com")
    assert ("email_marketing", False, shop.pk, shop.pk) in bob
    assert all(source_id == shop.pk for _, _, source_id, _ in bob)
    assert records("cy@example.com") == [("email_marketing", False, backfill.pk, backfill.pk)]


# -- append-only -------------------------------------------------------------------------------------


def test_records_are_append_only_through_the_orm_and_the_database(ingest):
    ana = ingest(email="ana@example.com", consent={"email_marketing": True})
    record = ConsentRecord.objects.get(profile_id=ana)
    record.is_granted = False
    with pytest.raises(ValueError, match="append-only"):
        record.save()
    with pytest.raises(ValueError, match="append-only"):
        record.delete()
    if connection.vendor == "postgresql":
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            ConsentRecord.objects.filter(pk=record.pk).update(is_granted=False)
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            ConsentRecord.objects.filter(pk=record.pk).delete()
    record.refresh_from_db()
    assert record.is_granted is True


def test_the_admin_can_read_but_not_change_or_delete(ingest, admin_client):
    ana = ingest(email="ana@example.com", consent={"email_marketing": True})
    record = ConsentRecord.objects.get(profile_id=ana)
    url = f"/admin/consent/consentrecord/{record.pk}/"
    assert admin_client.get(url + "change/").status_code == 200  # a read-only view
    refused = admin_client.post(url + "change/", {"purpose": "analytics", "is_granted": "on"})
    assert refused.status_code == 403
    assert admin_client.post(url + "delete/", {"post": "yes"}).status_code == 403
    listing = admin_client.post(
        "/admin/consent/consentrecord/", {"action": "delete_selected", "_selected_action": [record.pk], "post": "yes"}
    )
    assert listing.status_code in (200, 302)
    record.refresh_from_db()
    assert (record.purpose, record.is_granted) == ("email_marketing", True)

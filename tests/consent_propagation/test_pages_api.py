"""The staff consent page, the consent-records API and the propagation page and API: permissions,
validation, and the same latency figures on the page and in the API."""

from datetime import timedelta

import pytest
from django.utils import timezone

from activations.local_destination import LocalDestination, Reply
from activations.models import SuppressionApplied
from cdp_site.models import AuditEntry
from consent.models import ConsentRecord
from consent.propagation import propagate_withdrawal, propagation_summary
from consent.recording import API, consent_record
from profiles.models import Profile
from tests.activations import conftest as activations_fixtures
from tests.consent_propagation import synced

pytestmark = pytest.mark.django_db

# Fixtures of the activations suite: people ingested through the real pipeline, audiences, destinations.
audience = activations_fixtures.audience
ingest = activations_fixtures.ingest
make_sync = activations_fixtures.make_sync
webhook_destination = activations_fixtures.webhook_destination

WITHDRAW = {"purpose": "email_marketing", "decision": "withdrawn", "note": "asked at the front desk"}


# -- the staff page ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "role, allowed",
    [("privacy_officer", True), ("guest_services", True), ("marketer", False), ("integration_engineer", False)],
)
def test_who_may_record_consent_on_the_staff_page(role, allowed, client, make_user, ingest):
    ana = ingest(email="ana@example.com", consent={"email_marketing": True})
    user = make_user(role)
    client.force_login(user)
    url = f"/profiles/{ana}/consent/new/"
    assert client.get(url).status_code == (200 if allowed else 403)
    response = client.post(url, WITHDRAW)
    assert response.status_code == (302 if allowed else 403)
    records = ConsentRecord.objects.filter(profile_id=ana, source__slug="back-office-staff")
    if allowed:
        assert response["Location"] == f"/profiles/{ana}/"
        [record] = records
        assert record.evidence == {"note": "asked at the front desk", "recorded_by": f"user:{user.username}"}
        assert Profile.objects.get(pk=ana).consent["email_marketing"]["is_granted"] is False
        assert AuditEntry.objects.filter(action="consent.record", actor=f"user:{user.username}").count() == 1
    else:
        assert not records.exists()
        assert Profile.objects.get(pk=ana).consent["email_marketing"]["is_granted"] is True
        assert not AuditEntry.objects.filter(action="consent.record").exists()
    # The profile page offers the form to those who may use it.
    page = client.get(f"/profiles/{ana}/").content.decode()
    assert ('data-testid="record-consent"' in page) is allowed


def test_a_grant_on_the_staff_page_needs_the_wording(client, make_user, ingest):
    ana = ingest(email="ana@example.com")
    client.force_login(make_user("privacy_officer"))
    url = f"/profiles/{ana}/consent/new/"
    response = client.post(url, {"purpose": "sms_marketing", "decision": "granted"})
    assert response.status_code == 400
    assert "a grant needs it as evidence" in response.content.decode()
    assert not ConsentRecord.objects.filter(profile_id=ana).exists()
    response = client.post(url, {"purpose": "sms_marketing", "decision": "granted", "scope": "sms-terms-v4"})
    assert response.status_code == 302
    record = ConsentRecord.objects.get(profile_id=ana)
    assert (record.purpose, record.is_granted, record.scope) == ("sms_marketing", True, "sms-terms-v4")
    assert client.post(url, {"purpose": "carrier_pigeon", "decision": "withdrawn"}).status_code == 400


def test_the_staff_page_follows_merges_and_knows_missing_profiles(client, make_user, ingest):
    first = ingest(email="ana@example.com")
    second = ingest(phone="+14155550100")
    survivor = ingest(email="ana@example.com", phone="+14155550100")
    absorbed = first if survivor == second else second
    client.force_login(make_user("guest_services"))
    response = client.get(f"/profiles/{absorbed}/consent/new/")
    assert (response.status_code, response["Location"]) == (302, f"/profiles/{survivor}/consent/new/")
    assert client.get("/profiles/999999/consent/new/").status_code == 404


# -- the consent-records API -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "role, status",
    [("privacy_officer", 201), ("guest_services", 201), ("marketer", 403), ("integration_engineer", 403)],
)
def test_who_may_record_consent_through_the_api(role, status, api, ingest):
    ana = ingest(email="ana@example.com", consent={"email_marketing": True})
    client = api(role)
    response = client.post(
        "/api/v1/consent-records/",
        {"profile": ana, "purpose": "email_marketing", "is_granted": False, "evidence": {"form": "pref-centre"}},
        format="json",
    )
    assert response.status_code == status, response.content
    created = ConsentRecord.objects.filter(source__slug="rest-api")
    if status == 201:
        body = response.json()
        record = created.get()
        assert body["id"] == record.pk and body["profile"] == ana and body["source"] == "rest-api"
        assert body["is_granted"] is False
        assert body["evidence"] == {"form": "pref-centre", "recorded_by": f"api:{client.username}"}
    else:
        assert not created.exists()
        assert Profile.objects.get(pk=ana).consent["email_marketing"]["is_granted"] is True


@pytest.mark.parametrize(
    "change, field",
    [
        ({"is_granted": None}, "is_granted"),
        ({"purpose": "carrier_pigeon"}, "purpose"),
        ({"profile": 999_999}, "profile"),
        ({"profile": "ana"}, "profile"),
        ({"captured_at": "in-the-future"}, "captured_at"),
        ({"captured_at": "yesterday"}, "captured_at"),
        ({"evidence": ["a", "list"]}, "evidence"),
        ({"scope": "x" * 201}, "scope"),
    ],
)
def test_the_api_answers_400_naming_the_field(change, field, api, ingest):
    ana = ingest(email="ana@example.com")
    body = {"profile": ana, "purpose": "email_marketing", "is_granted": False}
    if change.get("captured_at") == "in-the-future":
        change = {"captured_at": (timezone.now() + timedelta(days=1)).isoformat()}
    body.update(change)
    body = {key: value for key, value in body.items() if value is not None}
    response = api("privacy_officer").post("/api/v1/consent-records/", body, format="json")
    assert response.status_code == 400
    assert list(response.json()) == [field], response.json()
    assert not ConsentRecord.objects.filter(profile_id=ana).exists()


def test_reading_consent_records_by_profile(api, ingest):
    first = ingest(email="ana@example.com", consent={"email_marketing": True})
    second = ingest(phone="+14155550100")
    survivor = ingest(email="ana@example.com", phone="+14155550100")
    absorbed = first if survivor == second else second
    ingest(email="ben@example.com", consent={"email_marketing": True})
    withdrawal = consent_record(
        profile=survivor, purpose="email_marketing", is_granted=False, channel=API, actor="api:crm"
    )
    propagate_withdrawal(withdrawal)
    client = api("marketer")  # marketers read consent; they cannot record it
    body = client.get(f"/api/v1/consent-records/?profile={survivor}").json()
    assert [(row["purpose"], row["is_granted"]) for row in body["results"]] == [
        ("email_marketing", False),
        ("email_marketing", True),
    ]
    assert body["results"][0]["source"] == "rest-api"
    assert body["results"][0]["suppressions"][0]["status"] == "not_needed"  # no destination needs it here
    # A merged-away id finds the same records.
    assert client.get(f"/api/v1/consent-records/?profile={absorbed}").json()["results"] == body["results"]
    assert client.get(f"/api/v1/consent-records/{withdrawal.pk}/").json()["id"] == withdrawal.pk
    only = client.get(f"/api/v1/consent-records/?profile={survivor}&is_granted=false").json()["results"]
    assert [row["id"] for row in only] == [withdrawal.pk]
    # Append-only over the API too.
    url = f"/api/v1/consent-records/{withdrawal.pk}/"
    officer = api("privacy_officer")
    assert officer.patch(url, {"is_granted": True}, format="json").status_code in (403, 405)
    assert officer.delete(url).status_code in (403, 405)
    withdrawal.refresh_from_db()
    assert withdrawal.is_granted is False
    assert api("integration_engineer").get("/api/v1/consent-records/").status_code == 403


# -- the propagation page and API --------------------------------------------------------------------


@pytest.fixture
def propagated(ingest, audience, webhook_destination, make_sync):
    """Ana's withdrawal applied at one destination; Ben's refused by another (a failure)."""

    def answer(received):
        if received.json["type"] == "profile.removed" and received.json["data"]["key"] == "ben@example.com":
            return Reply(503, {"error": "maintenance"})
        return Reply(200, {})

    with LocalDestination(answer) as server:
        sync, ana, ben = synced(ingest, audience, webhook_destination, make_sync, server, max_attempts=1)
        applied = consent_record(profile=ana, purpose="email_marketing", is_granted=False, channel=API, actor="api:a")
        failed = consent_record(profile=ben, purpose="email_marketing", is_granted=False, channel=API, actor="api:a")
        [ok] = propagate_withdrawal(applied)
        [refused] = propagate_withdrawal(failed)
    assert (ok.status, refused.status) == ("applied", "failed")
    return sync, ok, refused


@pytest.mark.parametrize(
    "role, status",
    [("privacy_officer", 200), ("marketer", 403), ("guest_services", 403), ("integration_engineer", 403)],
)
def test_who_sees_the_propagation_page_and_api(role, status, client, make_user, api):
    client.force_login(make_user(role))
    assert client.get("/consent/propagation/").status_code == status
    assert api(role).get("/api/v1/consent/propagation/").status_code == status
    menu = [entry["label"] for entry in client.get("/").context["menu"]]
    assert ("Consent propagation" in menu) is (status == 200)


def test_the_propagation_page_shows_latency_and_highlights_failures(
    propagated, client, make_user, django_assert_max_num_queries
):
    sync, ok, refused = propagated
    client.force_login(make_user("privacy_officer"))
    with django_assert_max_num_queries(20):
        response = client.get("/consent/propagation/")
    page = response.content.decode()
    summary = propagation_summary(since=timezone.now() - timedelta(days=30))
    assert summary["overall"]["count"] == 1
    assert f'<dd data-testid="p50">{summary["overall"]["p50_ms"]} ms</dd>' in page
    assert f'<dd data-testid="max">{summary["overall"]["max_ms"]} ms</dd>' in page
    assert 'data-testid="failures"' in page and "1 failed" in page
    assert "maintenance" in page or "503" in page or refused.message in page
    assert page.count('class="failed"') >= 2  # the failure list and its withdrawal row
    assert sync.destination.name in page
    # htmx: the fragment alone.
    fragment = client.get("/consent/propagation/?days=7", HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in fragment and 'data-testid="per-destination"' in fragment


def test_the_propagation_api_gives_the_page_figures(propagated, api):
    sync, ok, refused = propagated
    body = api("privacy_officer").get("/api/v1/consent/propagation/").json()
    summary = propagation_summary(since=timezone.now() - timedelta(days=30))
    assert body["days"] == 30
    assert (
        body["overall"]
        == summary["overall"]
        == {
            "count": 1,
            "p50_ms": ok.latency_ms,
            "p95_ms": ok.latency_ms,
            "max_ms": ok.latency_ms,
        }
    )
    [destination] = [row for row in body["destinations"] if row["destination"] == sync.destination.slug]
    assert destination["latency"] == summary["overall"]
    assert destination["statuses"] == {"pending": 0, "applied": 1, "failed": 1, "not_needed": 0, "superseded": 0}
    assert body["open_failures"] == 1
    [failure] = body["failures"]
    assert (failure["profile_id"], failure["status"], failure["destination"]) == (
        refused.profile_id,
        "failed",
        sync.destination.slug,
    )
    assert failure["next_attempt_at"] is not None
    assert api("privacy_officer").get("/api/v1/consent/propagation/?days=x").status_code == 400
    assert SuppressionApplied.objects.count() == 2


def test_the_schema_documents_the_consent_endpoints(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = response.json()["paths"] if response["Content-Type"].endswith("json") else response.content.decode()
    assert "/api/v1/consent-records/" in paths and "/api/v1/consent/propagation/" in paths

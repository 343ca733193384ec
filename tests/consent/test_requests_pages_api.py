"""Privacy request deadlines, pages and API: who may do what, and what each surface shows."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from cdp_site.models import AuditEntry
from consent.models import PrivacyRequest
from consent.requests import (
    RequestInvalid,
    add_business_days,
    add_months,
    deadline_due,
    deadline_extended,
    privacy_request_confirm_receipt,
    privacy_request_create,
    privacy_request_extend,
    receipt_due,
)
from tests.activations import conftest as activation_fixtures

pytestmark = pytest.mark.django_db

ingest = activation_fixtures.ingest
OTHER_ROLES = ["marketer", "guest_services", "integration_engineer"]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def make_request(kind="deletion", regulation="gdpr", days_ago=0, **extra):
    return privacy_request_create(
        kind=kind,
        regulation=regulation,
        identifiers=["email:someone@example.org"],
        actor="test",
        received_at=timezone.now() - timedelta(days=days_ago),
        enqueue=False,
        **extra,
    )


# -- deadlines -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "due"),
    [
        ("2026-03-15T10:00:00", "2026-04-15T10:00:00"),  # same day next month
        ("2026-01-31T09:00:00", "2026-02-28T09:00:00"),  # no 31 February: the month's last day
        ("2028-01-31T09:00:00", "2028-02-29T09:00:00"),  # leap year
        ("2026-12-20T23:30:00", "2027-01-20T23:30:00"),  # over the year end
    ],
)
def test_gdpr_is_one_calendar_month(received, due):
    assert deadline_due("gdpr", at(received)) == at(due)
    assert receipt_due("gdpr", at(received)) is None


def test_gdpr_extension_is_two_further_months():
    assert deadline_extended("gdpr", at("2026-01-31T09:00:00")) == at("2026-04-30T09:00:00")
    assert deadline_extended("gdpr", at("2026-03-15T10:00:00")) == at("2026-06-15T10:00:00")


def test_ccpa_is_45_days_extendable_once_by_45_and_receipt_within_10_business_days():
    received = at("2026-03-06T16:00:00")  # a Friday
    assert deadline_due("ccpa", received) == at("2026-04-20T16:00:00")
    assert deadline_extended("ccpa", received) == at("2026-06-04T16:00:00")
    assert receipt_due("ccpa", received) == at("2026-03-20T16:00:00")  # two working weeks, weekends skipped
    assert receipt_due("ccpa", at("2026-03-07T12:00:00")) == at("2026-03-20T12:00:00")  # received on a Saturday


def test_business_days_and_months_helpers():
    assert add_business_days(at("2026-03-09T08:00:00"), 5) == at("2026-03-16T08:00:00")  # Monday -> Monday
    assert add_business_days(at("2026-03-13T08:00:00"), 1) == at("2026-03-16T08:00:00")  # Friday -> Monday
    assert add_months(at("2026-08-31T00:00:00"), 1) == at("2026-09-30T00:00:00")


def test_create_computes_deadlines_and_keeps_the_identifiers_encrypted():
    received = timezone.now() - timedelta(days=3)
    request = privacy_request_create(
        kind="deletion",
        regulation="ccpa",
        identifiers="email: Ana@Example.COM \n\nphone:(415) 555-0100\nemail:ana@example.com",
        actor="test",
        received_at=received,
        enqueue=False,
    )
    assert request.due_at == received + timedelta(days=45)
    assert request.receipt_due_at == add_business_days(received, 10)
    assert request.subject_identifiers == [
        {"type": "email", "value": "ana@example.com"},
        {"type": "phone", "value": "+14155550100"},
    ]
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT subject FROM consent_privacyrequest WHERE id = %s", [request.pk])
        stored = cursor.fetchone()[0]
    assert stored.startswith("gAAAAA") and "ana@" not in stored
    assert [item["type"] for item in request.subject_hashes] == ["email", "phone"]
    audit = AuditEntry.objects.get(action="privacy.deletion_request")
    assert "ana@" not in str(audit.detail) + audit.summary


def test_bad_identifiers_are_named_line_by_line():
    with pytest.raises(RequestInvalid) as caught:
        privacy_request_create(
            kind="deletion",
            regulation="gdpr",
            identifiers="emial:a@b.com\nemail:not-an-email\nphone:12\njust text",
            actor="test",
            enqueue=False,
        )
    errors = caught.value.errors
    assert errors[0].startswith("line 1: unknown identifier type 'emial'; known: ")
    assert errors[1].startswith("line 2: email: not an email address")
    assert errors[2].startswith("line 3: phone: not")
    assert errors[3].startswith("line 4: write one identifier as type:value")
    assert not PrivacyRequest.objects.exists()


def test_extension_once_within_the_first_period_with_a_reason():
    request = make_request(regulation="gdpr", days_ago=10)
    with pytest.raises(RequestInvalid, match="give the reason"):
        privacy_request_extend(request=request, reason=" ", actor="test")
    with pytest.raises(RequestInvalid, match="must be told"):
        privacy_request_extend(request=request, reason="complex", notified=False, actor="test")
    request = privacy_request_extend(request=request, reason="many systems to search", actor="test")
    assert request.extended_until == add_months(timezone.localtime(request.received_at), 3)
    assert request.effective_due_at == request.extended_until and request.extension_notified_at is not None
    with pytest.raises(RequestInvalid, match="already extended"):
        privacy_request_extend(request=request, reason="again", actor="test")
    late = make_request(regulation="ccpa", days_ago=50)
    with pytest.raises(RequestInvalid, match="too late"):
        privacy_request_extend(request=late, reason="late", actor="test")
    assert AuditEntry.objects.filter(action="privacy.request_extended").count() == 1


def test_overdue_and_late_receipt():
    now = timezone.now()
    overdue = make_request(regulation="gdpr", days_ago=40)
    assert overdue.is_overdue(now) and not make_request(regulation="gdpr", days_ago=5).is_overdue(now)
    ccpa = make_request(regulation="ccpa", days_ago=20)
    assert ccpa.is_receipt_overdue(now) and not ccpa.is_overdue(now)
    privacy_request_confirm_receipt(request=ccpa, actor="test")
    ccpa.refresh_from_db()
    assert not ccpa.is_receipt_overdue(now)
    PrivacyRequest.objects.filter(pk=overdue.pk).update(status="completed")
    overdue.refresh_from_db()
    assert not overdue.is_overdue(now)


# -- pages ------------------------------------------------------------------------------------------


def test_list_highlights_overdue_requests_and_late_receipts(client, make_user, django_assert_max_num_queries):
    overdue = make_request(regulation="gdpr", days_ago=40)
    on_time = make_request(regulation="gdpr", days_ago=2)
    late_receipt = make_request(kind="access", regulation="ccpa", days_ago=16)
    client.force_login(make_user("privacy_officer"))
    with django_assert_max_num_queries(8):
        response = client.get("/privacy-requests/")
    assert response.status_code == 200
    rows = {
        int(row.split('href="/privacy-requests/')[1].split("/")[0]): row
        for row in response.content.decode().split("<tr")[2:]
    }
    assert 'data-overdue="true"' in rows[overdue.pk] and "overdue" in rows[overdue.pk]
    assert "overdue" not in rows[on_time.pk]
    assert "late" in rows[late_receipt.pk] and 'data-overdue="true"' not in rows[late_receipt.pk]
    # The filter (also served as an htmx fragment).
    fragment = client.get("/privacy-requests/?overdue=true", HTTP_HX_REQUEST="true")
    body = fragment.content.decode()
    assert "<h1>" not in body and f"/privacy-requests/{overdue.pk}/" in body
    assert f"/privacy-requests/{on_time.pk}/" not in body


def test_new_request_form_names_bad_lines_then_runs_the_request(
    client, make_user, ingest, django_capture_on_commit_callbacks
):
    ingest(email="ana@example.com", traits={"first_name": "Ana"})
    client.force_login(make_user("privacy_officer"))
    assert client.get("/privacy-requests/new/").status_code == 200
    bad = client.post(
        "/privacy-requests/new/",
        {"kind": "deletion", "regulation": "gdpr", "identifiers": "emial:ana@example.com\nemail:nope"},
    )
    assert bad.status_code == 400
    text = bad.content.decode()
    assert "line 1: unknown identifier type" in text and "line 2: email: not an email address" in text
    assert not PrivacyRequest.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/privacy-requests/new/",
            {"kind": "deletion", "regulation": "gdpr", "identifiers": "email:Ana@Example.com"},
        )
    request = PrivacyRequest.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/privacy-requests/{request.pk}/"
    assert request.status == "completed"  # the queued task ran (django-q2 sync mode in tests)
    assert request.requested_by.username.startswith("privacy_officer")
    detail = client.get(f"/privacy-requests/{request.pk}/").content.decode()
    assert "find_profiles" in detail and "verify" in detail and "ana@example.com" not in detail
    assert "erased; keyed hash" in detail


def test_detail_actions_extend_confirm_and_retry(client, make_user):
    request = make_request(regulation="ccpa", days_ago=1)
    PrivacyRequest.objects.filter(pk=request.pk).update(status="failed", error="destinations: down")
    client.force_login(make_user("privacy_officer"))
    page = client.get(f"/privacy-requests/{request.pk}/").content.decode()
    assert "Retry from the failed step" in page and "Confirm receipt" in page and "Extend the deadline" in page
    assert "s***@example.org" in page and "someone@example.org" not in page

    refused = client.post(f"/privacy-requests/{request.pk}/extend/", {"reason": "busy"}, follow=True)
    assert "told" in refused.content.decode()
    client.post(f"/privacy-requests/{request.pk}/extend/", {"reason": "busy season", "notified": "on"})
    client.post(f"/privacy-requests/{request.pk}/confirm-receipt/")
    client.post(f"/privacy-requests/{request.pk}/retry/")
    request.refresh_from_db()
    assert request.extended_until == request.received_at + timedelta(days=90)
    assert request.receipt_confirmed_at is not None
    assert (request.status, request.error) == ("in_progress", "")


def test_menu_shows_privacy_requests_to_privacy_officers_only(client, make_user):
    client.force_login(make_user("privacy_officer"))
    assert 'href="/privacy-requests/"' in client.get("/privacy-requests/").content.decode()
    client.force_login(make_user("marketer"))
    assert 'href="/privacy-requests/"' not in client.get("/").content.decode()


@pytest.mark.parametrize("role", OTHER_ROLES)
def test_other_roles_are_refused_every_page_and_nothing_changes(client, make_user, role):
    request = make_request(regulation="ccpa")
    PrivacyRequest.objects.filter(pk=request.pk).update(status="failed")
    client.force_login(make_user(role))
    for path in ("/privacy-requests/", "/privacy-requests/new/", f"/privacy-requests/{request.pk}/"):
        assert client.get(path).status_code == 403, path
    assert client.get(f"/privacy-requests/{request.pk}/archive/").status_code == 403
    new = client.post(
        "/privacy-requests/new/", {"kind": "deletion", "regulation": "gdpr", "identifiers": "email:x@example.org"}
    )
    assert new.status_code == 403
    for action in ("extend", "confirm-receipt", "retry"):
        response = client.post(f"/privacy-requests/{request.pk}/{action}/", {"reason": "r", "notified": "on"})
        assert response.status_code == 403, action
    request.refresh_from_db()
    assert PrivacyRequest.objects.count() == 1
    assert (request.status, request.extended_until, request.receipt_confirmed_at) == ("failed", None, None)


def test_anonymous_visitors_are_sent_to_log_in(client):
    assert client.get("/privacy-requests/").status_code == 302


# -- API --------------------------------------------------------------------------------------------


def test_api_create_list_retrieve_and_actions(api, ingest, django_capture_on_commit_callbacks):
    ingest(email="ana@example.com", traits={"first_name": "Ana"})
    officer = api("privacy_officer")
    bad = officer.post(
        "/api/v1/privacy-requests/",
        {"kind": "deletion", "regulation": "gdpr", "identifiers": ["email:nope"]},
        format="json",
    )
    assert bad.status_code == 400 and "not an email address" in bad.json()["identifiers"][0]
    with django_capture_on_commit_callbacks(execute=True):
        created = officer.post(
            "/api/v1/privacy-requests/",
            {"kind": "deletion", "regulation": "ccpa", "identifiers": ["email:ana@example.com"]},
            format="json",
        )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["identifier_types"] == ["email"] and "ana@" not in created.content.decode()
    assert body["receipt_due_at"] and body["is_overdue"] is False
    request_id = body["id"]

    detail = officer.get(f"/api/v1/privacy-requests/{request_id}/").json()
    assert detail["status"] == "completed" and detail["profiles_found"] == 1
    assert [step["name"] for step in detail["steps"]][-1] == "verify"
    listed = officer.get("/api/v1/privacy-requests/?status=completed&kind=deletion").json()
    assert [item["id"] for item in listed["results"]] == [request_id]

    confirmed = officer.post(f"/api/v1/privacy-requests/{request_id}/confirm-receipt/")
    assert confirmed.status_code == 200 and confirmed.json()["receipt_confirmed_at"]
    assert officer.post(f"/api/v1/privacy-requests/{request_id}/confirm-receipt/").status_code == 400
    completed_extend = officer.post(
        f"/api/v1/privacy-requests/{request_id}/extend/", {"reason": "r", "notified": True}, format="json"
    )
    assert completed_extend.status_code == 400 and "completed" in str(completed_extend.json())
    assert officer.post(f"/api/v1/privacy-requests/{request_id}/retry/").status_code == 400

    open_request = make_request(regulation="gdpr", days_ago=3)
    extended = officer.post(
        f"/api/v1/privacy-requests/{open_request.pk}/extend/", {"reason": "complex", "notified": True}, format="json"
    )
    assert extended.status_code == 200
    assert extended.json()["effective_due_at"] == extended.json()["extended_until"]
    assert officer.get(f"/api/v1/privacy-requests/{request_id}/archive/").status_code == 404  # a deletion


@pytest.mark.parametrize("role", OTHER_ROLES)
def test_api_refuses_other_roles_and_changes_nothing(api, role):
    request = make_request(regulation="gdpr")
    client = api(role)
    assert client.get("/api/v1/privacy-requests/").status_code == 403
    assert client.get(f"/api/v1/privacy-requests/{request.pk}/").status_code == 403
    created = client.post(
        "/api/v1/privacy-requests/",
        {"kind": "access", "regulation": "gdpr", "identifiers": ["email:x@example.org"]},
        format="json",
    )
    assert created.status_code == 403
    for action in ("extend", "confirm-receipt", "retry"):
        response = client.post(f"/api/v1/privacy-requests/{request.pk}/{action}/", {"reason": "r", "notified": True})
        assert response.status_code == 403, action
    request.refresh_from_db()
    assert PrivacyRequest.objects.count() == 1 and request.extended_until is None
    assert request.receipt_confirmed_at is None


def test_sweeper_resumes_requests_whose_task_was_lost(ingest, django_capture_on_commit_callbacks):
    from consent.tasks_requests import privacy_requests_sweep_task

    ingest(email="ana@example.com")
    request = privacy_request_create(
        kind="deletion", regulation="gdpr", identifiers=["email:ana@example.com"], actor="test", enqueue=False
    )
    assert privacy_requests_sweep_task() == []  # not stale yet
    PrivacyRequest.objects.filter(pk=request.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert privacy_requests_sweep_task() == [request.pk]
    request.refresh_from_db()
    assert request.status == "completed"

"""Pages and API of the source audit: who may read and run it, and what they show."""

import pytest
from django.urls import resolve, reverse
from rest_framework.test import APIRequestFactory, force_authenticate

from profiles.api.views_source_audit import SourceAuditRunView, SourceAuditView
from profiles.models import SourceAuditRun
from profiles.source_audit import source_audit_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def engineer(client, make_user):
    client.force_login(make_user("integration_engineer"))
    return client


@pytest.fixture
def marketer(client, make_user):
    client.force_login(make_user("marketer"))
    return client


def test_the_audit_page_ranks_sources_and_shows_the_overlap(audit_world, engineer):
    source_audit_run(triggered_by="test")
    html = engineer.get(reverse("source_audit:audit")).content.decode()
    assert html.index(">Payments</a>") < html.index(">Bookings</a>") < html.index(">Web</a>")
    assert "Run audit now" in html and "3.85" in html

    html = engineer.get(reverse("source_audit:audit"), {"identifier_type": "email"}).content.decode()
    assert 'title="3 of 4">75%' in html  # Bookings' emails also sent by Payments
    fragment = engineer.get(
        reverse("source_audit:audit"), {"identifier_type": "email"}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert fragment.lstrip().startswith('<table class="overlap">') and "75%" in fragment


def test_the_source_page_shows_its_figures(audit_world, engineer):
    source_audit_run(triggered_by="test")
    html = engineer.get(reverse("source_audit:source_audit", args=["web"])).content.decode()
    assert "Redeliveries (same sender id again, stored once): 1 of 6 deliveries (17%)" in html
    assert "1 of 5 (20%)" in html  # events in the future
    html = engineer.get(reverse("source_audit:source_audit", args=["bookings"])).content.decode()
    assert "required property &#x27;booking_id&#x27; is missing" in html
    assert "2 undeclared properties: booking.cancelled.room, booking.created.room" in html
    assert engineer.get(reverse("source_audit:source_audit", args=["nope"])).status_code == 404


def test_pages_before_any_audit_say_so(audit_world, engineer):
    assert "No audit has run yet" in engineer.get(reverse("source_audit:audit")).content.decode()
    html = engineer.get(reverse("source_audit:source_audit", args=["web"])).content.decode()
    assert "not in the latest audit" in html
    assert "no source audit has run yet" in engineer.get(reverse("source_audit:integration_plan")).content.decode()


def test_the_run_button_runs_the_audit(audit_world, engineer):
    response = engineer.post(reverse("source_audit:run"))
    assert response.status_code == 302 and response["Location"] == reverse("source_audit:audit")
    run = SourceAuditRun.objects.get()  # the test settings run django-q2 tasks inline
    assert run.triggered_by.startswith("user:integration_engineer") and run.figures["ranking"][0] == "payments"


def test_the_integration_plan_lists_priorities_identifiers_gaps_and_compliance(audit_world, engineer):
    source_audit_run(triggered_by="test")
    html = engineer.get(reverse("source_audit:integration_plan")).content.decode()
    assert "@media print" in html and ".topbar" in html
    assert html.index("1. Payments") < html.index("2. Bookings") < html.index("3. Web")
    assert "email 100%, stripe_customer_id 100%" in html  # Payments' identifiers and coverage
    assert "15 min" in html  # Bookings' freshness SLA
    assert "28.6% of raw events quarantined (1 contract, 1 mapping, 0 identity)" in html
    assert "sent but not configured: email" in html
    compliance = html[html.index("Compliance map") :]
    bookings = compliance[compliance.index("<td>Bookings</td>") : compliance.index("<td>Web</td>")]
    assert "<code>email_marketing</code> 1 granted, 0 withdrawn" in bookings
    assert "data.consent {purpose: true|false}" in bookings
    assert "Mailer" in bookings and "bookers: 4" in bookings and "tombstones" in bookings
    web = compliance[compliance.index("<td>Web</td>") :]
    assert "<code>advertising</code> 1 granted, 0 withdrawn" in web
    payments = compliance[compliance.index("<td>Payments</td>") : compliance.index("<td>Bookings</td>")]
    assert "Stripe events carry no marketing consent" in payments and "<code>" not in payments


def test_a_marketer_may_neither_read_nor_run_the_audit(audit_world, marketer):
    for name, args in (
        ("source_audit:audit", []),
        ("source_audit:source_audit", ["web"]),
        ("source_audit:integration_plan", []),
    ):
        assert marketer.get(reverse(name, args=args)).status_code == 403
    assert marketer.post(reverse("source_audit:run")).status_code == 403
    assert SourceAuditRun.objects.count() == 0


def _api(view, user, method="get"):
    request = getattr(APIRequestFactory(), method)("/api/v1/sources/audit/")
    force_authenticate(request, user=user)
    return view.as_view()(request)


def test_the_api_returns_the_latest_snapshot_and_runs_the_audit(audit_world, make_user):
    engineer = make_user("integration_engineer")
    assert _api(SourceAuditView, engineer).status_code == 404
    response = _api(SourceAuditRunView, engineer, "post")
    assert response.status_code == 202 and response.data == {"queued": True}
    response = _api(SourceAuditView, engineer)
    assert response.status_code == 200
    run = SourceAuditRun.objects.get()
    assert response.data["id"] == run.pk and response.data["window_days"] == 30
    figures = response.data["figures"]
    assert figures["ranking"] == ["payments", "bookings", "web"]
    assert figures["sources"]["bookings"]["overlap"]["payments"]["email"]["share"] == 0.75


def test_the_api_refuses_a_marketer(audit_world, make_user):
    marketer = make_user("marketer")
    assert _api(SourceAuditView, marketer).status_code == 403
    assert _api(SourceAuditRunView, marketer, "post").status_code == 403
    assert SourceAuditRun.objects.count() == 0


def test_the_api_run_route(audit_world, api):
    assert api("marketer").post(reverse("source-audit-run")).status_code == 403
    engineer = api("integration_engineer")
    assert engineer.post(reverse("source-audit-run")).status_code == 202
    assert SourceAuditRun.objects.count() == 1
    response = engineer.get(reverse("source-audit"))  # the real route, past the source router
    assert response.status_code == 200 and response.json()["figures"]["ranking"] == ["payments", "bookings", "web"]
    assert api("marketer").get(reverse("source-audit")).status_code == 403


def test_the_api_snapshot_route_reaches_the_audit(db):
    # The audit's routes come before the source router's sources/<slug>/ (cdp_site/api_urls.py).
    assert resolve(reverse("source-audit")).url_name == "source-audit"


def test_a_source_named_like_an_audit_page_gets_a_slug_that_does_not_shadow_it(client, make_user):
    from profiles.sources import source_create

    source, _ = source_create(name="Audit", kind="csv")
    assert source.slug == "audit-2"
    client.force_login(make_user("integration_engineer"))
    assert client.get(reverse("profiles:source_detail", args=[source.slug])).status_code == 200

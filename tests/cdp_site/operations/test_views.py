"""The health dashboard and the alert pages: what each role sees and may do, and the banner."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from cdp_site.alerts import alert_rule_save, alerts_evaluate
from cdp_site.models import AuditEntry
from cdp_site.operations_models import Alert, AlertRule
from cdp_site.operations_trends import operations_snapshot_capture, slot_of
from profiles.models import RawEvent
from profiles.sources import source_create

pytestmark = pytest.mark.django_db

DASHBOARD = reverse("operations:dashboard")
ALERTS = reverse("operations:alert_list")
NEW_RULE = reverse("operations:alert_rule_new")
SECRET = "whsec_dGhpcy1pcy1hLXRlc3Qtc2VjcmV0LWtleQ=="


def slot_start(moment: datetime) -> datetime:
    return datetime.fromtimestamp(slot_of(moment) * 300, tz=UTC)


@pytest.fixture
def history(send, canonical_source):
    """Three snapshots over the last 15 minutes, a stale source breaching its SLA, and an open alert."""
    stale, _ = source_create(name='<b>Old</b> "POS"', kind="csv", freshness_sla_minutes=30)
    RawEvent.objects.create(source=stale, external_id="x", received_at=timezone.now() - timedelta(hours=3), payload={})
    send()
    base = slot_start(timezone.now()) - timedelta(minutes=15)
    rule = alert_rule_save(
        actor="user:ivy", name="Backlog", metric="ingestion_pending", comparison="above", threshold=0, consecutive=1
    )
    for minutes in (0, 5, 10):
        operations_snapshot_capture(now=base + timedelta(minutes=minutes))
    alerts_evaluate()
    return {"stale": stale, "rule": rule, "alert": Alert.objects.get()}


def test_dashboard_shows_trends_breaches_and_open_alerts(page, history):
    response = page("marketer").get(DASHBOARD)
    assert response.status_code == 200
    html = response.content.decode()
    stale = history["stale"]
    # Freshness: the stale source's row is red, and its name is escaped.
    assert f'<tr id="freshness-{stale.slug}" class="breach">' in html
    assert "<b>Old</b>" not in html
    # Open alerts at the top, before the charts.
    assert html.index('data-testid="open-alerts"') < html.index('data-testid="freshness"')
    assert "Backlog" in html and "Acknowledge</button>" not in html  # marketers cannot acknowledge
    # A chart per metric, with the rule's threshold drawn on the pending raw events chart.
    assert (
        html.count('<svg xmlns="http://www.w3.org/2000/svg" class="chart"') == 17
    )  # two of them the events table's partitions
    pending = html[html.index('id="metric-ingestion_pending"') :]
    pending = pending[: pending.index("</section>")]
    assert 'class="threshold"' in pending and "3 points from" in pending
    assert "breach" in pending  # the live value breaches the rule
    # The banner on this page and on others.
    assert 'data-testid="alert-banner"' in html
    assert 'data-testid="alert-banner"' in page("marketer").get(reverse("home")).content.decode()


@pytest.mark.parametrize("range_key", ["24h", "7d", "30d", "bogus"])
def test_dashboard_ranges_and_htmx_fragment(page, history, range_key):
    client = page("integration_engineer")
    response = client.get(DASHBOARD, {"range": range_key}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html  # the fragment only
    expected = range_key if range_key != "bogus" else "24h"
    assert (
        f'href="?range={expected}" hx-get="?range={expected}" hx-target="#dashboard" '
        'hx-push-url="true" aria-current="true"' in html
    )


def test_dashboard_query_count_does_not_grow_with_data(page, history, send, django_assert_max_num_queries):
    client = page("integration_engineer")
    with CaptureQueriesContext(connection) as first:
        assert client.get(DASHBOARD).status_code == 200
    for number in range(3):
        source, _ = source_create(name=f"More {number}", kind="csv")
        send(source=source)
    alert_rule_save(
        actor="user:ivy",
        name="Freshness",
        metric="source_freshness_breached",
        comparison="above",
        threshold=0.5,
        consecutive=1,
    )
    operations_snapshot_capture(now=timezone.now())
    with CaptureQueriesContext(connection) as second:
        assert client.get(DASHBOARD, {"range": "30d"}).status_code == 200
    assert len(second) == len(first)
    with django_assert_max_num_queries(45):
        client.get(DASHBOARD)


def test_marketer_views_but_cannot_manage_rules_or_acknowledge(page, history):
    client = page("marketer")
    html = client.get(ALERTS).content.decode()
    assert "Backlog" in html and "New rule" not in html and ">Edit<" not in html
    rule, alert = history["rule"], history["alert"]
    data = {"name": "Mine", "metric": "worker_queue_depth", "comparison": "above", "threshold": "1", "consecutive": "1"}
    assert client.get(NEW_RULE).status_code == 403
    assert client.post(NEW_RULE, data).status_code == 403
    assert client.post(reverse("operations:alert_rule_edit", args=[rule.pk]), data).status_code == 403
    assert client.post(reverse("operations:alert_rule_delete", args=[rule.pk])).status_code == 403
    assert client.post(reverse("operations:alert_acknowledge", args=[alert.pk])).status_code == 403
    assert list(AlertRule.objects.values_list("name", flat=True)) == ["Backlog"]
    assert Alert.objects.get().acknowledged_at is None
    assert not AuditEntry.objects.exclude(action="alert_rule.create").exists()


def test_integration_engineer_creates_edits_and_deletes_a_rule(page, roles):
    client = page("integration_engineer")
    data = {
        "name": "Queue",
        "metric": "worker_queue_depth",
        "comparison": "above",
        "threshold": "100",
        "consecutive": "3",
        "webhook_url": "https://hooks.example.com/cdp",
        "webhook_secret": SECRET,
        "is_active": "on",
    }
    response = client.post(NEW_RULE, data)
    assert response.status_code == 302 and response["Location"] == ALERTS
    rule = AlertRule.objects.get()
    assert (rule.metric, rule.threshold, rule.consecutive, rule.webhook_secret) == (
        "worker_queue_depth",
        100,
        3,
        SECRET,
    )
    assert rule.created_by.startswith("user:integration_engineer")
    edit = reverse("operations:alert_rule_edit", args=[rule.pk])
    html = client.get(edit).content.decode()
    assert SECRET not in html and "A secret is stored" in html
    response = client.post(edit, {**data, "threshold": "250", "webhook_secret": ""})
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.threshold, rule.webhook_secret) == (250, SECRET)
    html = client.get(ALERTS).content.decode()
    assert "Queue" in html and SECRET not in html and "signed" in html
    assert client.post(reverse("operations:alert_rule_delete", args=[rule.pk])).status_code == 302
    assert not AlertRule.objects.exists()
    assert list(AuditEntry.objects.order_by("id").values_list("action", flat=True)) == [
        "alert_rule.create",
        "alert_rule.change",
        "alert_rule.delete",
    ]


def test_rule_form_shows_clear_validation_messages_and_never_echoes_the_secret(page, roles):
    client = page("integration_engineer")
    data = {
        "name": "Errors",
        "metric": "ingestion_error_ratio",
        "comparison": "above",
        "threshold": "5",
        "consecutive": "1",
        "label": "pos",
        "webhook_url": "https://hooks.example.com/cdp",
        "webhook_secret": "",
    }
    response = client.post(NEW_RULE, data)
    assert response.status_code == 400
    html = response.content.decode()
    assert "This metric is a ratio: enter a value between 0 and 1 (0.05 is 5%)." in html
    assert "is one figure for the whole platform: leave the label blank." in html
    assert "A webhook needs a signing secret" in html
    response = client.post(
        NEW_RULE, {**data, "threshold": "0.05", "label": "", "webhook_secret": SECRET, "consecutive": "0"}
    )
    assert response.status_code == 400
    assert "Ensure this value is greater than or equal to 1." in response.content.decode()
    assert SECRET not in response.content.decode()
    assert not AlertRule.objects.exists()


def test_acknowledge(page, history):
    alert = history["alert"]
    client = page("integration_engineer")
    response = client.post(reverse("operations:alert_acknowledge", args=[alert.pk]), {"next": DASHBOARD})
    assert response.status_code == 302 and response["Location"] == DASHBOARD
    alert.refresh_from_db()
    assert alert.acknowledged_by.startswith("user:integration_engineer") and alert.acknowledged_at
    entry = AuditEntry.objects.get(action="alert.acknowledge")
    assert entry.target_id == str(alert.pk)
    # An outside `next` is not followed.
    response = client.post(reverse("operations:alert_acknowledge", args=[alert.pk]), {"next": "https://evil.example"})
    assert response["Location"] == ALERTS


def test_banner_needs_the_permission_and_costs_one_query(page, history, make_user):
    from django.test import Client

    with CaptureQueriesContext(connection) as queries:
        html = page("guest_services").get(reverse("home")).content.decode()
    assert "1 open alert</span>" in html
    assert len([query for query in queries if '"cdp_site_alert"' in query["sql"]]) == 1
    nobody = Client()
    nobody.force_login(make_user())
    with CaptureQueriesContext(connection) as queries:
        assert 'data-testid="alert-banner"' not in nobody.get(reverse("home")).content.decode()
    assert not [query for query in queries if '"cdp_site_alert"' in query["sql"]]
    Alert.objects.update(status=Alert.RESOLVED, resolved_at=timezone.now())
    assert 'data-testid="alert-banner"' not in page("marketer").get(reverse("home")).content.decode()

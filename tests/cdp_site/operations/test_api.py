"""The health dashboard over the REST API: trends, alerts and alert rules."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from cdp_site.alerts import alert_rule_save, alerts_evaluate
from cdp_site.models import AuditEntry
from cdp_site.operations_models import Alert, AlertRule
from cdp_site.operations_trends import operations_snapshot_capture, slot_of
from profiles.processing import raw_events_process

pytestmark = pytest.mark.django_db

TRENDS = "/api/v1/operations/trends/"
ALERTS = "/api/v1/operations/alerts/"
RULES = "/api/v1/operations/alert-rules/"
SECRET = "whsec_dGhpcy1pcy1hLXRlc3Qtc2VjcmV0LWtleQ=="


@pytest.fixture
def snapshots(send, roles):
    base = datetime.fromtimestamp(slot_of(timezone.now()) * 300, tz=UTC) - timedelta(minutes=10)
    send()
    send()
    operations_snapshot_capture(now=base)
    raw_events_process()
    operations_snapshot_capture(now=base + timedelta(minutes=5))
    send()
    operations_snapshot_capture(now=base + timedelta(minutes=10))
    return base


def test_trends_returns_the_series_points(api, snapshots, canonical_source):
    response = api("marketer").get(TRENDS, {"metric": "ingestion_pending", "range": "24h"})
    assert response.status_code == 200
    body = response.json()
    assert {key: body[key] for key in ("metric", "label", "unit", "labelled_by", "range", "max_points")} == {
        "metric": "ingestion_pending",
        "label": "Pending raw events",
        "unit": "count",
        "labelled_by": None,
        "range": "24h",
        "max_points": 300,
    }
    (series,) = body["series"]
    assert series["points"] == [
        {"at": (snapshots + timedelta(minutes=minutes)).isoformat(), "value": value}
        for minutes, value in ((0, 2.0), (5, 0.0), (10, 1.0))
    ]
    assert (series["last"], series["min"], series["max"]) == (1.0, 0.0, 2.0)

    labelled = api("guest_services").get(TRENDS, {"metric": "source_freshness_seconds", "range": "7d"}).json()
    assert [item["label"] for item in labelled["series"]] == [canonical_source.slug]
    assert labelled["labelled_by"] == "source"


def test_trends_rejects_unknown_metric_and_range(api, roles):
    response = api("marketer").get(TRENDS, {"metric": "nope", "range": "1y"})
    assert response.status_code == 400
    assert set(response.json()) == {"metric", "range"}
    assert "ingestion_error_ratio" in response.json()["metric"][0]


def test_alerts_list_and_filter(api, snapshots):
    alert_rule_save(
        actor="test", name="Backlog", metric="ingestion_pending", comparison="above", threshold=0, consecutive=1
    )
    alerts_evaluate()
    (alert,) = Alert.objects.all()
    body = api("marketer").get(ALERTS, {"status": "open"}).json()
    (row,) = body["results"]
    assert {key: row[key] for key in ("id", "rule_name", "metric", "status", "value_at_raise", "threshold")} == {
        "id": alert.pk,
        "rule_name": "Backlog",
        "metric": "ingestion_pending",
        "status": "open",
        "value_at_raise": 1.0,
        "threshold": 0.0,
    }
    assert api("marketer").get(ALERTS, {"status": "resolved"}).json()["results"] == []
    assert api("marketer").get(ALERTS, {"status": "maybe"}).status_code == 400


def test_alert_rules_crud_with_write_only_secret_and_audit(api, roles):
    engineer = api("integration_engineer")
    payload = {
        "name": "Errors",
        "metric": "ingestion_error_ratio",
        "comparison": "above",
        "threshold": 0.05,
        "consecutive": 3,
        "webhook_url": "https://hooks.example.com/cdp",
        "webhook_secret": SECRET,
    }
    response = engineer.post(RULES, payload, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert "webhook_secret" not in body and body["has_webhook_secret"] is True
    assert body["created_by"] == f"api:{engineer.username}"
    rule = AlertRule.objects.get(pk=body["id"])
    assert rule.webhook_secret == SECRET

    response = engineer.patch(f"{RULES}{rule.pk}/", {"threshold": 0.1}, format="json")
    assert response.status_code == 200, response.json()
    rule.refresh_from_db()
    assert (rule.threshold, rule.consecutive, rule.webhook_secret) == (0.1, 3, SECRET)

    listed = api("marketer").get(RULES).json()
    assert [item["name"] for item in listed] == ["Errors"]
    assert SECRET not in str(listed)

    bad = engineer.post(RULES, {**payload, "threshold": 2, "webhook_secret": ""}, format="json")
    assert bad.status_code == 400
    assert set(bad.json()) == {"threshold", "webhook_secret"}

    assert engineer.delete(f"{RULES}{rule.pk}/").status_code == 204
    assert not AlertRule.objects.exists()
    assert list(AuditEntry.objects.order_by("id").values_list("action", "actor")) == [
        ("alert_rule.create", f"api:{engineer.username}"),
        ("alert_rule.change", f"api:{engineer.username}"),
        ("alert_rule.delete", f"api:{engineer.username}"),
    ]


def test_marketer_cannot_create_change_or_delete_rules(api, roles):
    rule = alert_rule_save(
        actor="test", name="Queue", metric="worker_queue_depth", comparison="above", threshold=10, consecutive=1
    )
    marketer = api("marketer")
    payload = {"name": "Mine", "metric": "worker_queue_depth", "comparison": "above", "threshold": 1, "consecutive": 1}
    assert marketer.post(RULES, payload, format="json").status_code == 403
    assert marketer.patch(f"{RULES}{rule.pk}/", {"threshold": 1}, format="json").status_code == 403
    assert marketer.delete(f"{RULES}{rule.pk}/").status_code == 403
    assert list(AlertRule.objects.values_list("name", "threshold")) == [("Queue", 10.0)]
    assert AuditEntry.objects.count() == 1

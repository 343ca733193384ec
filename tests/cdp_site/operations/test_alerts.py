"""Alert rules: raised after N snapshots, resolved after, one open alert per rule and label, and the
signed webhook (delivered to a real local HTTP server, or failing without breaking the snapshot)."""

import base64
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from activations.local_destination import LocalDestination, Reply
from cdp_site.alerts import AlertRuleInvalid, alert_acknowledge, alert_rule_delete, alert_rule_save, alerts_evaluate
from cdp_site.models import AuditEntry
from cdp_site.operations_models import Alert, AlertRule, OperationsSnapshot
from cdp_site.operations_trends import operations_snapshot_capture, slot_of
from cdp_site.tasks_operations import operations_snapshot_task
from profiles.models import RawEvent
from profiles.processing import raw_events_process
from profiles.sources import source_create
from profiles.webhooks.signatures import verify_standard

pytestmark = pytest.mark.django_db

SECRET = "whsec_" + base64.b64encode(b"alert-webhook-test-key-32-bytes!").decode()


def slot_start(moment: datetime) -> datetime:
    return datetime.fromtimestamp(slot_of(moment) * 300, tz=UTC)


@pytest.fixture
def clock():
    """Snapshot times, one 5-minute slot apart, in the recent past."""
    start = slot_start(timezone.now()) - timedelta(hours=1)
    return iter(start + timedelta(minutes=5 * n) for n in range(100))


def rule(**values) -> AlertRule:
    defaults = {
        "name": "Backlog",
        "metric": "ingestion_pending",
        "comparison": "above",
        "threshold": 0,
        "consecutive": 2,
    }
    return alert_rule_save(actor="user:ivy", **{**defaults, **values})


def snapshot_and_evaluate(clock):
    now = next(clock)
    operations_snapshot_capture(now=now)
    return alerts_evaluate(now=now)


def test_raised_after_n_snapshots_resolved_after_and_one_open_at_most(send, clock):
    backlog = rule(consecutive=2)
    send()
    first = snapshot_and_evaluate(clock)
    assert first.raised == [] and Alert.objects.count() == 0  # one breaching snapshot is not two

    second = snapshot_and_evaluate(clock)
    (alert,) = Alert.objects.all()
    assert second.raised == [alert.pk]
    assert (alert.status, alert.value_at_raise, alert.last_value, alert.label) == (Alert.OPEN, 1.0, 1.0, "")
    assert alert.webhook_status == ""  # no webhook on this rule

    send()
    third = snapshot_and_evaluate(clock)
    assert third.raised == [] and third.still_open == [alert.pk]
    assert alerts_evaluate().still_open == [alert.pk]  # evaluating again changes nothing
    alert.refresh_from_db()
    assert (Alert.objects.count(), alert.value_at_raise, alert.last_value) == (1, 1.0, 2.0)

    raw_events_process()
    fourth = snapshot_and_evaluate(clock)
    assert fourth.resolved == [alert.pk]
    alert.refresh_from_db()
    assert (alert.status, alert.last_value, alert.resolution) == (Alert.RESOLVED, 0.0, "back within the threshold")
    assert alert.resolved_at is not None

    send()
    snapshot_and_evaluate(clock)
    snapshot_and_evaluate(clock)
    assert Alert.objects.filter(rule=backlog).count() == 2
    assert Alert.objects.filter(rule=backlog, status=Alert.OPEN).count() == 1


def test_the_database_refuses_a_second_open_alert_for_a_rule_and_label():
    backlog = rule()
    now = timezone.now()
    Alert.objects.create(rule=backlog, value_at_raise=1, raised_at=now)
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(rule=backlog, value_at_raise=2, raised_at=now)
    Alert.objects.create(rule=backlog, label="other", value_at_raise=2, raised_at=now)
    Alert.objects.create(rule=backlog, status=Alert.RESOLVED, value_at_raise=2, raised_at=now)


def test_per_source_rules_alert_per_label(canonical_source, clock):
    stale, _ = source_create(name="Stale POS", kind="csv", freshness_sla_minutes=5)
    RawEvent.objects.create(source=stale, external_id="old", received_at=timezone.now() - timedelta(days=2), payload={})
    every_source = rule(name="Fresh", metric="source_freshness_breached", threshold=0.5, consecutive=1)
    one_source = rule(
        name="Canonical fresh",
        metric="source_freshness_breached",
        label=canonical_source.slug,
        threshold=0.5,
        consecutive=1,
    )
    outcome = snapshot_and_evaluate(clock)
    (alert,) = Alert.objects.all()
    assert outcome.raised == [alert.pk]
    assert (alert.rule_id, alert.label, alert.value_at_raise) == (every_source.pk, stale.slug, 1.0)
    assert not Alert.objects.filter(rule=one_source).exists()


def test_below_rules_and_missing_values(clock):
    # No deletion ran: the success ratio is missing, which never breaches.
    rule(name="Deletions", metric="deletion_propagation_success", comparison="below", threshold=0.99, consecutive=1)
    assert snapshot_and_evaluate(clock).raised == []


def test_deactivating_a_rule_resolves_its_alert_and_deleting_removes_it(send, clock):
    backlog = rule(consecutive=1)
    send()
    snapshot_and_evaluate(clock)
    (alert,) = Alert.objects.filter(status=Alert.OPEN)
    values = {name: getattr(backlog, name) for name in ("name", "metric", "comparison", "threshold", "consecutive")}
    alert_rule_save(actor="user:ivy", rule=backlog, **values, is_active=False)
    alert.refresh_from_db()
    assert (alert.status, alert.resolution) == (Alert.RESOLVED, "rule deactivated")
    assert snapshot_and_evaluate(clock).raised == []

    alert_rule_delete(rule=backlog, actor="user:ivy")
    assert not AlertRule.objects.exists() and not Alert.objects.exists()
    actions = list(AuditEntry.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["alert_rule.create", "alert_rule.change", "alert_rule.delete"]
    delete = AuditEntry.objects.get(action="alert_rule.delete")
    assert (delete.target_id, delete.detail["alerts"]) == (str(backlog.pk), 1)


def test_rule_validation():
    with pytest.raises(AlertRuleInvalid) as invalid:
        alert_rule_save(
            actor="user:ivy",
            name="",
            metric="nope",
            comparison="sideways",
            threshold=float("nan"),
            consecutive=0,
            webhook_url="ftp://example.com",
        )
    assert set(invalid.value.errors) == {"name", "metric", "comparison", "threshold", "consecutive", "webhook_url"}
    with pytest.raises(AlertRuleInvalid) as invalid:
        rule(metric="ingestion_error_ratio", threshold=5, label="pos", webhook_url="https://example.com/hook")
    assert set(invalid.value.errors) == {"threshold", "label", "webhook_secret"}
    assert "between 0 and 1" in invalid.value.errors["threshold"][0]
    with pytest.raises(AlertRuleInvalid) as invalid:
        rule(metric="reconciliation_delta", label="no-such-destination")
    assert invalid.value.errors == {"label": ["No destination has the slug “no-such-destination”."]}
    assert not AlertRule.objects.exists() and not AuditEntry.objects.exists()


def test_secret_is_encrypted_kept_when_blank_and_never_audited():
    hooked = rule(webhook_url="https://example.com/hook", webhook_secret=SECRET)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT webhook_secret FROM cdp_site_alertrule WHERE id = %s", [hooked.pk])
        (stored,) = cursor.fetchone()
    assert stored and SECRET not in stored
    values = {name: getattr(hooked, name) for name in ("name", "metric", "comparison", "consecutive", "webhook_url")}
    kept = alert_rule_save(actor="user:ivy", rule=hooked, **values, threshold=3, webhook_secret="")
    assert AlertRule.objects.get(pk=kept.pk).webhook_secret == SECRET
    assert all(SECRET not in json.dumps(entry.detail) for entry in AuditEntry.objects.all())
    change = AuditEntry.objects.get(action="alert_rule.change")
    assert change.detail["changed"] == ["threshold"] and change.detail["webhook_secret_changed"] is False


def test_acknowledge_is_audited_once():
    backlog = rule()
    alert = Alert.objects.create(rule=backlog, value_at_raise=1, raised_at=timezone.now())
    alert_acknowledge(alert=alert, actor="user:ivy")
    again = alert_acknowledge(alert=alert, actor="user:someone-else")
    assert again.acknowledged_by == "user:ivy"
    assert AuditEntry.objects.filter(action="alert.acknowledge", target_id=str(alert.pk)).count() == 1


# -- webhooks ------------------------------------------------------------------------------------------


def verified(received) -> dict:
    headers = received.headers
    verify_standard(
        body=received.body,
        message_id=headers["webhook-id"],
        timestamp=headers["webhook-timestamp"],
        header=headers["webhook-signature"],
        secrets=[SECRET],
        now=time.time(),
        tolerance=300,
    )
    return received.json


def test_webhook_raised_and_resolved_signed_to_a_real_server(send, clock, django_capture_on_commit_callbacks):
    with LocalDestination() as server:
        backlog = rule(consecutive=1, webhook_url=server.url + "/alerts", webhook_secret=SECRET)
        send()
        with django_capture_on_commit_callbacks(execute=True):
            snapshot_and_evaluate(clock)
        (alert,) = Alert.objects.all()
        assert (alert.webhook_event, alert.webhook_status, alert.webhook_attempts) == ("alert.raised", "delivered", 1)
        raw_events_process()
        with django_capture_on_commit_callbacks(execute=True):
            snapshot_and_evaluate(clock)
        alert.refresh_from_db()
        assert (alert.webhook_event, alert.webhook_status, alert.webhook_attempts) == (
            "alert.resolved",
            "delivered",
            1,
        )
    raised, resolved = server.requests
    assert (raised.method, raised.path) == ("POST", "/alerts")
    body = verified(raised)
    assert body["type"] == "alert.raised"
    assert body["data"] | {"raised_at": None} == {
        "alert_id": alert.pk,
        "status": "open",
        "rule_id": backlog.pk,
        "rule": "Backlog",
        "metric": "ingestion_pending",
        "metric_label": "Pending raw events",
        "unit": "count",
        "label": "",
        "comparison": "above",
        "threshold": 0.0,
        "consecutive": 1,
        "value_at_raise": 1.0,
        "value": 1.0,
        "raised_at": None,
        "resolved_at": None,
        "resolution": "",
    }
    assert raised.headers["webhook-id"] == f"msg_alert_{alert.pk}_raised"
    body = verified(resolved)
    assert (body["type"], body["data"]["status"], body["data"]["value"]) == ("alert.resolved", "resolved", 0.0)
    # A forged signature does not verify with the project's code.
    resolved.headers["webhook-signature"] = raised.headers["webhook-signature"]
    with pytest.raises(Exception, match="no v1 signature"):
        verified(resolved)


def test_failing_webhook_is_retried_recorded_and_never_breaks_the_snapshot(
    send, no_backoff, django_capture_on_commit_callbacks
):
    with LocalDestination(lambda received: Reply(503, {"error": "down"})) as server:
        rule(consecutive=1, webhook_url=server.url, webhook_secret=SECRET)
        rule(name="Refused", consecutive=1, webhook_url="http://127.0.0.1:9/nothing-listens", webhook_secret=SECRET)
        send()
        with django_capture_on_commit_callbacks(execute=True):
            result = operations_snapshot_task()
    assert result["created"] is True and OperationsSnapshot.objects.filter(pk=result["snapshot_id"]).exists()
    assert len(result["alerts"]["raised"]) == 2
    failed = Alert.objects.get(rule__name="Backlog")
    assert (failed.status, failed.webhook_status, failed.webhook_attempts, failed.webhook_last_error) == (
        Alert.OPEN,
        Alert.FAILED,
        3,
        "HTTP 503",
    )
    assert len(server.requests) == 3
    assert len({received.headers["webhook-id"] for received in server.requests}) == 1  # stable across retries
    refused = Alert.objects.get(rule__name="Refused")
    assert refused.webhook_status == Alert.FAILED and refused.webhook_attempts == 3
    assert refused.webhook_last_error.startswith("ConnectError")


def test_a_permanent_refusal_is_not_retried(send, no_backoff, clock, django_capture_on_commit_callbacks):
    with LocalDestination(lambda received: Reply(401, {"error": "bad signature"})) as server:
        rule(consecutive=1, webhook_url=server.url, webhook_secret=SECRET)
        send()
        with django_capture_on_commit_callbacks(execute=True):
            snapshot_and_evaluate(clock)
    (alert,) = Alert.objects.all()
    assert (alert.webhook_status, alert.webhook_attempts, alert.webhook_last_error) == ("failed", 1, "HTTP 401")
    assert len(server.requests) == 1


def test_an_error_in_the_alerts_keeps_the_snapshot(monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("cdp_site.tasks_operations.alerts_evaluate", broken)
    result = operations_snapshot_task()
    assert result["alerts"] == "failed" and result["created"] is True
    assert OperationsSnapshot.objects.count() == 1
    again = operations_snapshot_task()  # the same slot: no second snapshot
    assert again["created"] is False and OperationsSnapshot.objects.count() == 1


def test_the_schedule_exists():
    from django_q.models import Schedule

    schedule = Schedule.objects.get(name="operations_snapshot")
    assert (schedule.func, schedule.schedule_type, schedule.minutes, schedule.repeats) == (
        "cdp_site.tasks_operations.operations_snapshot_task",
        "I",
        5,
        -1,
    )

"""Alert rules over the metric catalogue: saving and deleting rules (audited), evaluating them against
the latest snapshots, acknowledging alerts, and telling a webhook when an alert is raised or resolved.

Evaluation is idempotent: it reads the last N snapshots (N = the rule's `consecutive`) and opens an
alert when the condition holds in every one of them, keeps it open (updating its last value) while
the latest still breaches, and resolves it when the latest does not. A partial unique index allows
one open alert per rule and label; the rules are locked in pk order, so two evaluators never race.

Webhooks are Standard Webhooks messages (the same signing code as the webhook destination), sent by
a django-q2 task after commit with a short timeout and a bounded retry. The outcome is written on the
alert; nothing here raises into the snapshot task.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from urllib.parse import urlsplit

import httpx
from django.db import transaction
from django.db.models import BooleanField, Count, ExpressionWrapper, F, Q
from django.utils import timezone

from activations.connectors.webhook import sign
from cdp_site.audit import audit_record
from cdp_site.operations_models import MAX_CONSECUTIVE, Alert, AlertRule
from cdp_site.operations_trends import METRICS, snapshots_recent

logger = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_SECONDS = 5.0
WEBHOOK_ATTEMPTS = 3
WEBHOOK_BACKOFF_SECONDS = (1.0, 3.0)  # before the 2nd and 3rd attempt
WEBHOOK_REQUEUE_AFTER = timedelta(minutes=10)  # a pending delivery whose task was lost is sent again
TASK_TIMEOUT_SECONDS = 60  # > attempts x timeout + backoff; the cluster's retry (360 s) is above it


class AlertRuleInvalid(Exception):
    """The rule cannot be saved: `errors` is {field: [messages]} (forms and the API show them)."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{name}: {' '.join(messages)}" for name, messages in errors.items()))
        self.errors = errors


# -- rules --------------------------------------------------------------------------------------------

RULE_FIELDS = ("name", "metric", "label", "comparison", "threshold", "consecutive", "webhook_url", "is_active")


def alert_rule_validate(values: dict, *, has_stored_secret: bool, new_secret: str | None) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}

    def add(name, message):
        errors.setdefault(name, []).append(message)

    if not str(values.get("name") or "").strip():
        add("name", "Give the rule a name that says what is wrong when it fires.")
    metric = METRICS.get(values.get("metric") or "")
    if metric is None:
        add("metric", f"Choose a metric of the catalogue: {', '.join(sorted(METRICS))}.")
    elif values.get("label") and not metric.labelled_by:
        add("label", f"“{metric.label}” is one figure for the whole platform: leave the label blank.")
    elif values.get("label") and not _label_exists(metric.labelled_by, values["label"]):
        add("label", f"No {metric.labelled_by} has the slug “{values['label']}”.")
    if values.get("comparison") not in (AlertRule.ABOVE, AlertRule.BELOW):
        add("comparison", "Choose above or below.")
    threshold = values.get("threshold")
    if not isinstance(threshold, int | float) or isinstance(threshold, bool) or not math.isfinite(threshold):
        add("threshold", "Enter a number.")
    elif metric is not None and metric.unit == "ratio" and not 0 <= threshold <= 1:
        add("threshold", "This metric is a ratio: enter a value between 0 and 1 (0.05 is 5%).")
    consecutive = values.get("consecutive")
    if not isinstance(consecutive, int) or not 1 <= consecutive <= MAX_CONSECUTIVE:
        add("consecutive", f"Enter a whole number of snapshots between 1 and {MAX_CONSECUTIVE} (5 minutes apart).")
    url = values.get("webhook_url") or ""
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            add("webhook_url", "Enter an http:// or https:// URL.")
        elif not (new_secret or has_stored_secret):
            add("webhook_secret", "A webhook needs a signing secret, so the receiver can verify each message.")
    return errors


def _label_exists(kind: str, slug: str) -> bool:
    if kind == "source":
        from profiles.models import Source

        return Source.objects.filter(slug=slug).exists()
    if kind == "destination":
        from activations.models import Destination

        return Destination.objects.filter(slug=slug).exists()
    return True


def _rule_state(rule: AlertRule) -> dict:
    return {name: getattr(rule, name) for name in RULE_FIELDS}


@transaction.atomic
def alert_rule_save(*, actor: str, rule: AlertRule | None = None, webhook_secret: str | None = None, **values):
    """Create (rule=None) or change a rule. `webhook_secret`: None or "" keeps the stored one.
    Removing the webhook URL forgets the secret. Raises AlertRuleInvalid."""
    values = {name: values[name] for name in RULE_FIELDS if name in values}
    values.setdefault("label", "")
    values.setdefault("webhook_url", "")
    values.setdefault("is_active", True)
    values["label"] = (values.get("label") or "").strip()
    values["name"] = (values.get("name") or "").strip()
    if rule is not None:
        rule = AlertRule.objects.select_for_update().get(pk=rule.pk)
    errors = alert_rule_validate(
        values, has_stored_secret=bool(rule and rule.webhook_secret), new_secret=webhook_secret or None
    )
    if errors:
        raise AlertRuleInvalid(errors)
    before = _rule_state(rule) if rule is not None else None
    creating = rule is None
    if creating:
        rule = AlertRule(created_by=actor[:150])
    for name, value in values.items():
        setattr(rule, name, value)
    secret_changed = bool(webhook_secret)
    if webhook_secret:
        rule.webhook_secret = webhook_secret
    if not rule.webhook_url and rule.webhook_secret:
        rule.webhook_secret, secret_changed = "", True
    rule.save()
    after = _rule_state(rule)
    changed = sorted(name for name in RULE_FIELDS if before is None or before[name] != after[name])
    if creating or changed or secret_changed:
        audit_record(
            actor=actor,
            action="alert_rule.create" if creating else "alert_rule.change",
            target=rule,
            summary=f"Alert rule “{rule.name}”: {rule.metric} {rule.comparison} {rule.threshold:g}"[:300],
            before=before,
            after=after,
            changed=changed,
            webhook_secret_changed=secret_changed,
        )
    if before is not None and before["is_active"] and not rule.is_active:
        now = timezone.now()
        for alert in Alert.objects.select_for_update().filter(rule=rule, status=Alert.OPEN).order_by("pk"):
            _resolve(alert, rule=rule, now=now, reason="rule deactivated")
    return rule


@transaction.atomic
def alert_rule_delete(*, rule: AlertRule, actor: str) -> None:
    """Delete a rule and its alerts (deactivate it instead to keep the history)."""
    rule = AlertRule.objects.select_for_update().get(pk=rule.pk)
    counts = rule.alerts.aggregate(total=Count("id"), open=Count("id", filter=Q(status=Alert.OPEN)))
    audit_record(
        actor=actor,
        action="alert_rule.delete",
        target=rule,
        summary=f"Deleted alert rule “{rule.name}” ({counts['total']} alerts)"[:300],
        before=_rule_state(rule),
        alerts=counts["total"],
        open_alerts=counts["open"],
    )
    rule.delete()


@transaction.atomic
def alert_acknowledge(*, alert: Alert, actor: str) -> Alert:
    """Someone is on it. Acknowledging twice keeps the first acknowledgement."""
    alert = Alert.objects.select_for_update().select_related("rule").get(pk=alert.pk)
    if alert.acknowledged_at is not None:
        return alert
    alert.acknowledged_by, alert.acknowledged_at = actor[:150], timezone.now()
    alert.save(update_fields=["acknowledged_by", "acknowledged_at"])
    audit_record(
        actor=actor,
        action="alert.acknowledge",
        target=alert,
        summary=f"Acknowledged alert {alert.pk} of “{alert.rule.name}”"[:300],
        rule_id=alert.rule_id,
        label=alert.label,
        status=alert.status,
    )
    return alert


# -- selectors -----------------------------------------------------------------------------------------


def alerts_open() -> list[Alert]:
    return list(
        Alert.objects.filter(status=Alert.OPEN)
        .select_related("rule")
        .defer("rule__webhook_secret")
        .order_by("-raised_at", "-id")
    )


def alert_history(*, limit: int = 100):
    return Alert.objects.select_related("rule").defer("rule__webhook_secret").order_by("-raised_at", "-id")[:limit]


def alert_rules():
    """Every rule with its number of open alerts; the secret is not decrypted, only whether one is stored."""
    return (
        AlertRule.objects.defer("webhook_secret")
        .annotate(
            open_alerts=Count("alerts", filter=Q(alerts__status=Alert.OPEN)),
            secret_stored=ExpressionWrapper(~Q(webhook_secret=""), output_field=BooleanField()),
        )
        .order_by("name", "id")
    )


def thresholds_by_metric() -> dict[str, list[AlertRule]]:
    """Active rules per metric: the dashboard draws their thresholds on the charts."""
    found: dict[str, list[AlertRule]] = {}
    for rule in AlertRule.objects.filter(is_active=True).defer("webhook_secret").order_by("name", "id"):
        found.setdefault(rule.metric, []).append(rule)
    return found


# -- evaluation ----------------------------------------------------------------------------------------


@dataclass
class Evaluation:
    raised: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    still_open: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"raised": self.raised, "resolved": self.resolved, "still_open": self.still_open}


def _labels(rule: AlertRule, latest: dict, open_labels: set[str]) -> list[str]:
    metric = METRICS.get(rule.metric)
    if metric is None or not metric.labelled_by:
        return [""]
    if rule.label:
        return [rule.label]
    return sorted(set(latest) | open_labels)


def _webhook_queue(alert: Alert, rule: AlertRule, event: str, now: datetime) -> None:
    if not rule.webhook_url:
        return
    alert.webhook_event, alert.webhook_status, alert.webhook_attempts = event, Alert.PENDING, 0
    alert.webhook_last_error, alert.webhook_queued_at, alert.webhook_delivered_at = "", now, None
    transaction.on_commit(partial(alert_webhook_enqueue, alert_id=alert.pk, event=event))


WEBHOOK_FIELDS = [
    "webhook_event",
    "webhook_status",
    "webhook_attempts",
    "webhook_last_error",
    "webhook_queued_at",
    "webhook_delivered_at",
]


def _resolve(alert: Alert, *, rule: AlertRule, now: datetime, reason: str, value: float | None = None) -> None:
    alert.status, alert.resolved_at, alert.resolution = Alert.RESOLVED, now, reason[:200]
    if value is not None:
        alert.last_value = value
    _webhook_queue(alert, rule, Alert.RESOLVED_EVENT, now)
    alert.save(update_fields=["status", "resolved_at", "resolution", "last_value", *WEBHOOK_FIELDS])
    logger.info("alert_resolved alert_id=%s rule_id=%s reason=%s", alert.pk, rule.pk, reason)


@transaction.atomic
def alerts_evaluate(*, now: datetime | None = None) -> Evaluation:
    """Open, keep or resolve the alerts of every rule against the latest snapshots."""
    now = now or timezone.now()
    outcome = Evaluation()
    rules = list(AlertRule.objects.select_for_update().order_by("pk"))
    open_alerts = {
        (alert.rule_id, alert.label): alert
        for alert in Alert.objects.select_for_update().filter(status=Alert.OPEN).order_by("pk")
    }
    active = [rule for rule in rules if rule.is_active and rule.metric in METRICS]
    depth = max((rule.consecutive for rule in active), default=0)
    snapshots = snapshots_recent(count=depth) if depth else []  # newest first
    for rule in active:
        metric = METRICS[rule.metric]
        recent = [metric.values(snapshot.figures) for snapshot in snapshots[: rule.consecutive]]
        latest = recent[0] if recent else {}
        open_labels = {label for (rule_id, label) in open_alerts if rule_id == rule.pk}
        for label in _labels(rule, latest, open_labels):
            values = [by_label.get(label) for by_label in recent]
            holds = len(values) == rule.consecutive and all(rule.breached(value) for value in values)
            current = latest.get(label)
            alert = open_alerts.pop((rule.pk, label), None)
            if alert is not None and holds:
                if alert.last_value != current:
                    alert.last_value = current
                    alert.save(update_fields=["last_value"])
                outcome.still_open.append(alert.pk)
            elif alert is not None:
                reason = "no data" if current is None else "back within the threshold"
                _resolve(alert, rule=rule, now=now, reason=reason, value=current)
                outcome.resolved.append(alert.pk)
            elif holds:
                alert = Alert(
                    rule=rule, label=label, status=Alert.OPEN, value_at_raise=current, last_value=current, raised_at=now
                )
                alert.save()
                _webhook_queue(alert, rule, Alert.RAISED, now)
                if rule.webhook_url:
                    alert.save(update_fields=WEBHOOK_FIELDS)
                outcome.raised.append(alert.pk)
                logger.info("alert_raised alert_id=%s rule_id=%s label=%s", alert.pk, rule.pk, label)
    by_id = {rule.pk: rule for rule in rules}
    for (rule_id, _), alert in open_alerts.items():  # rules switched off (or metrics gone from the catalogue)
        _resolve(alert, rule=by_id[rule_id], now=now, reason="rule deactivated")
        outcome.resolved.append(alert.pk)
    return outcome


# -- webhooks ------------------------------------------------------------------------------------------


def alert_webhook_payload(alert: Alert, event: str) -> dict:
    rule = alert.rule
    metric = METRICS.get(rule.metric)
    return {
        "type": event,
        "timestamp": timezone.now().isoformat(),
        "data": {
            "alert_id": alert.pk,
            "status": alert.status,
            "rule_id": rule.pk,
            "rule": rule.name,
            "metric": rule.metric,
            "metric_label": metric.label if metric else rule.metric,
            "unit": metric.unit if metric else None,
            "label": alert.label,
            "comparison": rule.comparison,
            "threshold": rule.threshold,
            "consecutive": rule.consecutive,
            "value_at_raise": alert.value_at_raise,
            "value": alert.last_value,
            "raised_at": alert.raised_at.isoformat(),
            "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
            "resolution": alert.resolution,
        },
    }


def alert_webhook_enqueue(*, alert_id: int, event: str) -> None:
    """Hand the delivery to a worker (after commit). If the broker is down, the snapshot task's sweep
    sends it later: the alert says it is pending."""
    try:
        from django_q.tasks import async_task

        async_task(
            "cdp_site.tasks_operations.alert_webhook_deliver_task",
            alert_id=alert_id,
            event=event,
            q_options={"task_name": f"alert_webhook_{alert_id}", "timeout": TASK_TIMEOUT_SECONDS},
        )
    except Exception:
        logger.exception("alert_webhook_enqueue_failed alert_id=%s; the sweep will send it", alert_id)


def _permanent(status_code: int) -> bool:
    """A 4xx other than timeout or rate limit will not get better by sending again."""
    return 400 <= status_code < 500 and status_code not in (408, 425, 429)


def alert_webhook_deliver(
    *, alert_id: int, event: str, sleep=time.sleep, client: httpx.Client | None = None
) -> Alert | None:
    """POST the signed message; up to WEBHOOK_ATTEMPTS tries with a short timeout each. Writes the
    outcome on the alert and never raises. `webhook-id` is the same on every try."""
    alert = Alert.objects.select_related("rule").filter(pk=alert_id).first()
    if alert is None:
        return None  # the rule (and its alerts) was deleted meanwhile
    rule = alert.rule
    if alert.webhook_event != event or alert.webhook_status == Alert.DELIVERED or not rule.webhook_url:
        return alert  # delivered already, or superseded by a newer event
    body = json.dumps(alert_webhook_payload(alert, event), separators=(",", ":"), default=str).encode()
    message_id = f"msg_alert_{alert.pk}_{event.rsplit('.', 1)[-1]}"
    attempts, error, delivered = 0, "", False
    own_client = client is None
    client = client or httpx.Client(timeout=WEBHOOK_TIMEOUT_SECONDS, follow_redirects=False)
    try:
        for attempt in range(WEBHOOK_ATTEMPTS):
            if attempt:
                sleep(WEBHOOK_BACKOFF_SECONDS[min(attempt - 1, len(WEBHOOK_BACKOFF_SECONDS) - 1)])
            attempts += 1
            timestamp = int(time.time())
            headers = {
                "content-type": "application/json",
                "user-agent": "cdp-alerts/1",
                "webhook-id": message_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": sign(
                    secret=rule.webhook_secret, message_id=message_id, timestamp=timestamp, body=body
                ),
            }
            try:
                response = client.post(rule.webhook_url, content=body, headers=headers)
            except httpx.HTTPError as failure:
                error = f"{type(failure).__name__}: {failure}"[:500]
                continue
            if 200 <= response.status_code < 300:
                delivered, error = True, ""
                break
            error = f"HTTP {response.status_code}"
            if _permanent(response.status_code):
                break
    except Exception as failure:  # never into the caller: the outcome goes on the alert
        logger.exception("alert_webhook_failed alert_id=%s", alert_id)
        error = f"{type(failure).__name__}: {failure}"[:500]
    finally:
        if own_client:
            client.close()
    now = timezone.now()
    Alert.objects.filter(pk=alert.pk, webhook_event=event).exclude(webhook_status=Alert.DELIVERED).update(
        webhook_status=Alert.DELIVERED if delivered else Alert.FAILED,
        webhook_attempts=F("webhook_attempts") + attempts,
        webhook_last_error=error,
        webhook_delivered_at=now if delivered else None,
    )
    logger.info("alert_webhook alert_id=%s event=%s delivered=%s attempts=%s", alert.pk, event, delivered, attempts)
    alert.refresh_from_db()
    return alert


def alert_webhooks_sweep(*, now: datetime | None = None) -> list[int]:
    """Deliveries still pending long after they were queued (a lost task, a broker that was down)."""
    cutoff = (now or timezone.now()) - WEBHOOK_REQUEUE_AFTER
    pending = list(
        Alert.objects.filter(webhook_status=Alert.PENDING, webhook_queued_at__lt=cutoff)
        .order_by("pk")
        .values_list("pk", "webhook_event")[:100]
    )
    for alert_id, event in pending:
        Alert.objects.filter(pk=alert_id).update(webhook_queued_at=now or timezone.now())
        alert_webhook_enqueue(alert_id=alert_id, event=event)
    return [alert_id for alert_id, _ in pending]

"""django-q2 tasks of the health dashboard: the 5-minute snapshot (scheduled by cdp_site
0006_operations_alerts) and alert webhook deliveries."""

import logging

from cdp_site.alerts import alert_webhook_deliver, alert_webhooks_sweep, alerts_evaluate
from cdp_site.operations_trends import operations_snapshot_capture, operations_snapshots_prune

logger = logging.getLogger(__name__)


def operations_snapshot_task() -> dict:
    """Store this slot's figures (once), prune old snapshots, then evaluate the alert rules. A failure
    of the alerts never loses the snapshot: it is committed first, and the next run evaluates again."""
    outcome = operations_snapshot_capture()
    pruned = operations_snapshots_prune()
    result = {
        "snapshot_id": outcome.snapshot.pk if outcome.snapshot else None,
        "created": outcome.created,
        "pruned": pruned,
    }
    try:
        result["alerts"] = alerts_evaluate().as_dict()
        result["webhooks_requeued"] = alert_webhooks_sweep()
    except Exception:
        logger.exception("alerts_evaluate_failed snapshot_id=%s", result["snapshot_id"])
        result["alerts"] = "failed"
    return result


def alert_webhook_deliver_task(*, alert_id: int, event: str) -> dict:
    alert = alert_webhook_deliver(alert_id=alert_id, event=event)
    if alert is None:
        return {"alert_id": alert_id, "status": "gone"}
    return {"alert_id": alert_id, "status": alert.webhook_status, "attempts": alert.webhook_attempts}

"""django-q2 task: the hourly snapshot of identity match-rate figures (scheduled by a migration)."""

from identity.metrics import identity_metrics_snapshot


def identity_metrics_snapshot_task() -> dict:
    snapshot = identity_metrics_snapshot()
    return {"snapshot_id": snapshot.pk, "captured_at": snapshot.captured_at.isoformat()}

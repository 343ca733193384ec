"""django-q2 task of the source audit: daily (the source_audit_daily schedule of profiles 0004) and
from the "Run audit now" button. Safe to run twice: each run stores one more snapshot."""

from profiles.source_audit import source_audit_run


def source_audit_task(*, triggered_by: str = "schedule", window_days: int | None = None) -> dict:
    run = source_audit_run(triggered_by=triggered_by, window_days=window_days)
    return {"source_audit_run_id": run.pk, "sources": len(run.figures.get("sources", {})), "ms": run.duration_ms}

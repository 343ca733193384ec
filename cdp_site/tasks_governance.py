"""django-q2 tasks of data governance, scheduled daily by cdp_site 0004_governance."""

from cdp_site.health import profile_health_run
from cdp_site.retention import TASK_MAX_SECONDS, retention_apply


def retention_apply_task() -> dict:
    """Apply the retention policies; stops within the q2 timeout, the next run carries on."""
    run = retention_apply(triggered_by="schedule", max_seconds=TASK_MAX_SECONDS)
    return {"purge_run_id": run.pk, "status": run.status, "counts": run.counts}


def profile_health_task(*, triggered_by: str = "schedule") -> dict:
    run = profile_health_run(triggered_by=triggered_by)
    return {"profile_health_run_id": run.pk, "counts": run.counts}

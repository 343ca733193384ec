"""django-q2 tasks: thin wrappers. Runs and records are the durable state; tasks only nudge."""

import logging

logger = logging.getLogger(__name__)


def sync_run_task(run_id: int) -> str:
    from activations.syncs import sync_run_execute

    run = sync_run_execute(run_id)
    return "held by another worker" if run is None else f"{run.status}/{run.phase}"


def activations_tick_task() -> dict:
    """Every minute: start scheduled syncs, resume runs nobody holds, retry due trigger sends."""
    from activations.syncs import SyncBusy, SyncNotReady, _enqueue, runs_to_resume, sync_run_start, syncs_due
    from activations.triggers import trigger_sends_retry_due, triggers_sweep

    started, resumed = [], []
    for sync in syncs_due():
        try:
            started.append(sync_run_start(sync=sync, triggered_by="schedule").pk)
        except (SyncBusy, SyncNotReady) as error:
            logger.info("scheduled_sync_not_started sync=%s reason=%s", sync.slug, error)
    for run_id in runs_to_resume():
        _enqueue(run_id)
        resumed.append(run_id)
    fired = triggers_sweep()
    retried = trigger_sends_retry_due()
    return {"started": started, "resumed": resumed, "trigger_sends": fired, "retried": retried}


def trigger_sends_deliver_task(send_ids: list[int]) -> int:
    from activations.triggers import deliver_sends

    return deliver_sends(send_ids)

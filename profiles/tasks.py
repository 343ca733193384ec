"""django-q2 tasks: thin nudges. The work they do is recorded in RawEvent.status, not the queue."""

import time

from django.conf import settings

from profiles.processing import ProcessResult, raw_events_process, raw_events_sweep


def raw_events_process_task() -> dict:
    """Drain pending raw events, then linger briefly for rows whose nudge was skipped.

    Bounded in time (well under the q2 timeout): when it stops busy, it nudges a successor.
    """
    total = ProcessResult()
    started = idle_since = time.monotonic()
    while True:
        result = raw_events_process(limit=settings.PROCESSING_BATCH_SIZE * 10)
        total.add(result)
        now = time.monotonic()
        if result.claimed:
            idle_since = now
        elif now - idle_since >= settings.PROCESSING_LINGER_SECONDS:
            return vars(total)
        else:
            time.sleep(0.1)
        if now - started > settings.PROCESSING_TASK_MAX_SECONDS:
            from profiles.ingest import enqueue_processing

            enqueue_processing()
            return vars(total)


def raw_events_sweep_task() -> dict:
    return vars(raw_events_sweep())


def event_partitions_maintain_task() -> dict:
    """Daily: the coming months' partitions of the events table, and crowded months split out of
    the default partition (PostgreSQL; nothing on SQLite)."""
    from profiles.partitions import analyze_events, ensure_event_partitions

    result = ensure_event_partitions()
    if not result.moved_rows:  # moving rows already analysed the table
        analyze_events()
    return result.as_dict()

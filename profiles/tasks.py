"""django-q2 tasks: thin nudges. The work they do is recorded in RawEvent.status, not the queue."""

from profiles.processing import raw_events_process, raw_events_sweep


def raw_events_process_task() -> dict:
    return vars(raw_events_process())


def raw_events_sweep_task() -> dict:
    return vars(raw_events_sweep())

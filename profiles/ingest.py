"""The request path's only write: store raw events (idempotently) and nudge a worker.

Views validate and authenticate, then call `raw_events_store`. Nothing here calls out of the
process; everything after the RawEvent row runs in django-q2 workers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from cdp_site.db import insert_rows
from profiles.models import RawEvent, Source


@dataclass
class IncomingEvent:
    external_id: str
    payload: dict
    topic: str = ""
    headers: dict = field(default_factory=dict)


def raw_events_store(*, source: Source, events: list[IncomingEvent], received_at: datetime | None = None) -> None:
    """Insert raw events; a redelivery (same source and external id) is a no-op, even when ten
    arrive at once (ON CONFLICT DO NOTHING on the unique constraint)."""
    if not events:
        return
    received_at = received_at or timezone.now()
    rows = [
        (
            source.pk,
            event.external_id,
            event.topic[:100],
            received_at,
            event.payload,
            event.headers,
            RawEvent.PENDING,
            "",
            0,
        )
        for event in events
    ]
    with transaction.atomic():
        insert_rows(RawEvent, RAW_EVENT_FIELDS, rows, ignore_conflicts=True)
        transaction.on_commit(enqueue_processing)


RAW_EVENT_FIELDS = [
    "source",
    "external_id",
    "topic",
    "received_at",
    "payload",
    "headers",
    "status",
    "error",
    "attempts",
]


_last_nudge = 0.0


def enqueue_processing() -> None:
    """Nudge a worker, at most once per PROCESSING_NUDGE_INTERVAL per process.

    Losing or skipping a nudge only delays work: a running processing task lingers for longer than
    the interval before it stops (so it sees rows whose nudge was skipped), and the sweeper claims
    anything left pending.
    """
    global _last_nudge
    now = time.monotonic()
    if now - _last_nudge < settings.PROCESSING_NUDGE_INTERVAL:
        return
    _last_nudge = now
    from django_q.tasks import async_task

    async_task("profiles.tasks.raw_events_process_task", q_options={"task_name": "raw_events_process"})

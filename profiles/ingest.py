"""The request path's only write: store raw events (idempotently) and nudge a worker.

Views validate and authenticate, then call `raw_events_store`. Nothing here calls out of the
process; everything after the RawEvent row runs in django-q2 workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.utils import timezone

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
        RawEvent(
            source=source,
            external_id=event.external_id,
            topic=event.topic[:100],
            received_at=received_at,
            payload=event.payload,
            headers=event.headers,
        )
        for event in events
    ]
    with transaction.atomic():
        RawEvent.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
        transaction.on_commit(enqueue_processing)


def enqueue_processing() -> None:
    """Nudge a worker. Losing this nudge only delays work: the sweeper claims pending rows."""
    from django_q.tasks import async_task

    async_task("profiles.tasks.raw_events_process_task", q_options={"task_name": "raw_events_process"})

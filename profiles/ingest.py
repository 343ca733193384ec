"""The request path's only write: store raw events (idempotently) and nudge a worker.

Views validate and authenticate, then call `raw_events_store`. Nothing here calls out of the
process; everything after the RawEvent row runs in django-q2 workers.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.http import JsonResponse
from django.utils import timezone

from cdp_site.db import insert_rows
from profiles.models import RawEvent, Source, SourceDeliveryCount

logger = logging.getLogger(__name__)

# What a lost or refused database connection raises; the sender should retry, not see a 500.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
DATABASE_RETRY_AFTER_SECONDS = 5


@dataclass
class IncomingEvent:
    external_id: str
    payload: dict
    topic: str = ""
    headers: dict = field(default_factory=dict)


def raw_events_store(*, source: Source, events: list[IncomingEvent], received_at: datetime | None = None) -> None:
    """Insert raw events; a redelivery (same source and external id) stores nothing, even when ten
    arrive at once (ON CONFLICT DO NOTHING on the unique constraint), and is only counted per
    source and day for the source audit."""
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
        stored = insert_rows(RawEvent, RAW_EVENT_FIELDS, rows, ignore_conflicts=True, returning=["id"])
        if len(stored) < len(rows):
            _count_redeliveries(source_id=source.pk, day=received_at.astimezone(UTC).date(), n=len(rows) - len(stored))
        transaction.on_commit(enqueue_processing)


_REDELIVERY_UPSERT = (
    "INSERT INTO {table} (source_id, day, duplicates) VALUES (%s, %s, %s) "
    "ON CONFLICT (source_id, day) DO UPDATE SET duplicates = {table}.duplicates + excluded.duplicates"
)


def _count_redeliveries(*, source_id: int, day: date, n: int) -> None:
    """Count raw events the insert skipped as already stored (the source audit's duplicate rate).
    Only called when there were some: the common request pays nothing for it."""
    table = connection.ops.quote_name(SourceDeliveryCount._meta.db_table)
    params = [source_id, connection.ops.adapt_datefield_value(day), n]
    with connection.cursor() as cursor:
        cursor.execute(_REDELIVERY_UPSERT.format(table=table), params)


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

    try:
        async_task("profiles.tasks.raw_events_process_task", q_options={"task_name": "raw_events_process"})
    except Exception as error:  # noqa: BLE001 - the events are stored: a broker outage must not answer 500
        logger.warning("processing_nudge_failed error=%s; the sweeper will claim the events", type(error).__name__)


def database_unavailable_response(error: Exception, *, where: str) -> JsonResponse:
    """503 + Retry-After: the sender keeps the message and retries; a redelivery of anything that did
    get stored is deduplicated, so nothing acknowledged is lost and nothing is stored twice."""
    logger.warning("ingest_database_unavailable where=%s error=%s", where, type(error).__name__)
    response = JsonResponse(
        {
            "code": "database_unavailable",
            "message": f"Storage is temporarily unavailable; retry after {DATABASE_RETRY_AFTER_SECONDS} seconds.",
        },
        status=503,
    )
    response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
    return response

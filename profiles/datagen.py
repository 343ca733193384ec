"""Writing generated source data into the raw event log, streamed in chunks."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from django.db import transaction

from cdp_site.db import insert_rows
from profiles.demo import GeneratedEvent
from profiles.ingest import RAW_EVENT_FIELDS
from profiles.models import RawEvent, Source
from profiles.sources import source_create

DEMO_SOURCES = {
    "tracking": ("demo-web-app", "Web and app (SDK)"),
    "mindbody": ("demo-mindbody", "Mindbody bookings"),
    "stripe": ("demo-stripe", "Stripe payments"),
    "shopify": ("demo-shopify", "Shopify shop"),
}
# Bookings and payments are the systems of record for names and contact details.
DEMO_PRIORITIES = {"mindbody": 70, "stripe": 60, "shopify": 55, "tracking": 40}


def demo_sources() -> dict[str, Source]:
    sources = {}
    for kind, (slug, name) in DEMO_SOURCES.items():
        source = Source.objects.filter(slug=slug).first()
        if source is None:
            source, _ = source_create(name=name, kind=kind, slug=slug, priority=DEMO_PRIORITIES[kind])
        sources[kind] = source
    return sources


def raw_events_write(
    events: Iterable[GeneratedEvent],
    *,
    sources: dict[str, Source],
    chunk: int = 5000,
    on_chunk: Callable[[int, float], None] | None = None,
) -> int:
    """Store generated events as pending raw events: COPY on PostgreSQL, in chunks (flat memory)."""
    from django.utils import timezone

    written, started, rows = 0, time.monotonic(), []
    now = timezone.now()
    for event in events:
        source = sources[event.kind]
        rows.append(
            (
                source.pk,
                event.external_id,
                event.topic[:100],
                now,
                event.payload,
                event.headers,
                RawEvent.PENDING,
                "",
                0,
            )
        )
        if len(rows) >= chunk:
            written += _flush(rows)
            rows = []
            if on_chunk:
                on_chunk(written, time.monotonic() - started)
    written += _flush(rows)
    if on_chunk:
        on_chunk(written, time.monotonic() - started)
    return written


def _flush(rows: list[tuple]) -> int:
    if rows:
        with transaction.atomic():
            insert_rows(RawEvent, RAW_EVENT_FIELDS, rows)
    return len(rows)

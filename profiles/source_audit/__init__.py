"""The source audit: what each source actually sent, how it scores for onboarding, and the
integration plan built from it.

`source_audit_run` computes every figure (aggregate queries, see figures.py) into a
`SourceAuditRun` snapshot and writes the four scores to the Source scorecard fields. It runs as a
django-q2 task (daily schedule, or the "Run audit now" button); pages and the API read the latest
snapshot. Running it twice only stores a second snapshot.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from identity.models import IdentifierType
from profiles.models import Source, SourceAuditRun
from profiles.source_audit import figures as measure
from profiles.source_audit import scorecard as scoring

logger = logging.getLogger(__name__)

DEFAULT_WINDOW_DAYS = 30


def window_days_default() -> int:
    return int(getattr(settings, "SOURCE_AUDIT_WINDOW_DAYS", DEFAULT_WINDOW_DAYS))


def source_figures(
    source: Source, *, since, types: dict[int, IdentifierType], config: measure.ActivationConfig
) -> dict:
    """Every measured figure of one source over the window starting at `since`."""
    raws = measure.window_raw_events(source, since)
    events = measure.window_events(source, since)
    raw_counts = measure.raw_event_counts(raws)
    by_type = measure.events_by_type(events)
    identifiers = measure.identifier_figures(source, events, types)
    trait_keys = measure.trait_keys_sent(source, since)
    return {
        "id": source.pk,
        "slug": source.slug,
        "name": source.name,
        "kind": source.kind,
        "is_active": source.is_active,
        "raw_events": raw_counts,
        "events_by_type": by_type,
        "events": sum(by_type.values()),
        "timestamps": measure.timestamp_figures(source, raws, events),
        "identifiers": identifiers,
        "duplicates": measure.duplicate_figures(source, since, raw_counts["total"], events),
        "contracts": measure.contract_figures(raws, raw_counts["total"]),
        "unknown_properties": measure.unknown_properties(source, since),
        "matchability": measure.matchability_figures(source),
        "activation": measure.activation_figures(events, by_type, trait_keys, config, identifiers["profiles_reached"]),
        "trait_keys": trait_keys,
        "exposure": measure.exposure_figures(source, identifiers, trait_keys),
    }


def source_audit_compute(*, window_days: int, now=None) -> dict:
    now = now or timezone.now()
    since = now - timedelta(days=window_days)
    sources = {source.pk: source for source in Source.objects.order_by("name", "pk")}
    types = IdentifierType.objects.in_bulk()
    config = measure.ActivationConfig()
    per_source = {
        source.slug: source_figures(source, since=since, types=types, config=config) for source in sources.values()
    }
    overlap = measure.overlap_figures(sources, types)
    total_revenue = sum(max(0.0, row["activation"]["revenue"]) for row in per_source.values())
    for slug, row in per_source.items():
        row["overlap"] = overlap.get(slug, {})
        row["scorecard"] = scoring.scorecard(row, total_revenue=total_revenue)
    ranking = scoring.ranking(
        {slug: row["scorecard"] for slug, row in per_source.items()},
        {slug: row["name"] for slug, row in per_source.items()},
    )
    return {
        "window_days": window_days,
        "since": since.isoformat(),
        "computed_at": now.isoformat(),
        "identifier_types": sorted(t.slug for t in types.values()),
        "formulas": scoring.FORMULAS,
        "weights": scoring.WEIGHTS,
        "ranking": ranking,
        "sources": per_source,
    }


def source_audit_run(*, triggered_by: str, window_days: int | None = None, now=None) -> SourceAuditRun:
    """Compute the audit, store it as the latest snapshot and write each source's scorecard."""
    window_days = window_days or window_days_default()
    started, now = time.monotonic(), now or timezone.now()
    figures = source_audit_compute(window_days=window_days, now=now)
    with transaction.atomic():
        for row in figures["sources"].values():
            card = row["scorecard"]
            Source.objects.filter(pk=row["id"]).update(
                activation_impact=card["activation_impact"],
                matchability=card["matchability"],
                ingestion_complexity=card["ingestion_complexity"],
                pii_exposure=card["pii_exposure"],
            )
        run = SourceAuditRun.objects.create(
            created_at=now,
            since=now - timedelta(days=window_days),
            window_days=window_days,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
            triggered_by=triggered_by[:150],
            figures=figures,
        )
    logger.info("source_audit_run id=%s sources=%s ms=%s", run.pk, len(figures["sources"]), run.duration_ms)
    return run


def source_audit_latest() -> SourceAuditRun | None:
    return SourceAuditRun.objects.order_by("-created_at", "-id").first()


def source_audit_enqueue(*, triggered_by: str) -> None:
    """Ask a worker for an audit now (the "Run audit now" button); the daily schedule does the rest."""
    from django_q.tasks import async_task

    async_task(
        "profiles.tasks_source_audit.source_audit_task",
        triggered_by=triggered_by,
        q_options={"task_name": "source_audit_now"},
    )


def overlap_types(figures: dict) -> list[str]:
    """Identifier types some source has sent, "all" first."""
    found = {
        slug for row in figures.get("sources", {}).values() for pair in row.get("overlap", {}).values() for slug in pair
    }
    return ["all", *sorted(found - {"all"})] if found else []


def overlap_matrix(figures: dict, identifier_type: str) -> list[dict]:
    """Rows in ranking order: per other source, the share of this source's identifiers of the type
    that the other source also sent (None where this source sent none of that type)."""
    order = figures.get("ranking", [])
    sources = figures.get("sources", {})
    rows = []
    for slug in order:
        overlap = sources[slug].get("overlap", {})
        cells = []
        for other in order:
            if other == slug:
                cells.append({"is_self": True})
                continue
            cell = overlap.get(other, {}).get(identifier_type)
            cells.append({"is_self": False, **cell} if cell else {"is_self": False, "share": None})
        rows.append({"slug": slug, "name": sources[slug]["name"], "cells": cells})
    return rows

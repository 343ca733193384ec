"""Snapshots of the operational figures and the series read from them: the metric catalogue that the
dashboard's charts, the trends API and the alert rules share.

A snapshot is collect_figures() stored once per 5-minute slot. Series are read with bounded, indexed
queries: rows of the chosen range (captured_at index), downsampled in SQL on the slot number
(`slot % step = 0`) so a chart never reads more than MAX_POINTS rows whatever the range.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Mod
from django.utils import timezone

from cdp_site.operations_metrics import collect_figures
from cdp_site.operations_models import SNAPSHOT_SLOT_SECONDS, OperationsSnapshot

logger = logging.getLogger(__name__)

KEEP = timedelta(days=30)
MAX_POINTS = 300
RANGES = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
DEFAULT_RANGE = "24h"
PRUNE_BATCH = 5000

RATIO, SECONDS, MILLISECONDS, COUNT, FLAG = "ratio", "seconds", "ms", "count", "flag"


# -- the catalogue ----------------------------------------------------------------------------------


def _dig(figures: dict, *path):
    value = figures
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _number(value) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _rows(path: tuple, key: str, field: str) -> Callable[[dict], dict]:
    """A labelled series out of a list of rows: {row[key]: row[field]}."""

    def extract(figures: dict) -> dict:
        rows = _dig(figures, *path) or []
        return {str(row[key]): _number(row.get(field)) for row in rows if isinstance(row, dict) and key in row}

    return extract


@dataclass(frozen=True)
class Metric:
    """One series of the catalogue. `extract(figures)` returns {label: value}; unlabelled metrics
    use the label "". `labelled_by` names what the label is (source, destination) or is empty."""

    key: str
    label: str
    unit: str
    description: str
    extract: Callable[[dict], dict]
    labelled_by: str = ""
    default_comparison: str = "above"

    def values(self, figures: dict) -> dict[str, float | None]:
        try:
            return self.extract(figures or {})
        except (KeyError, TypeError, ValueError):  # an older snapshot of another shape
            return {}

    def value(self, figures: dict, label: str = "") -> float | None:
        return self.values(figures).get(label)


def _scalar(*path, default_none_as_zero: bool = False) -> Callable[[dict], dict]:
    def extract(figures: dict) -> dict:
        value = _number(_dig(figures, *path))
        parent = _dig(figures, *path[:-1])
        if value is None and default_none_as_zero and isinstance(parent, dict) and path[-1] in parent:
            value = 0.0  # present and None: nothing of that kind right now
        return {"": value}

    return extract


def _review_backlog(figures: dict) -> dict:
    backlog = _dig(figures, "identity", "review_backlog") or {}
    values = [_number(backlog.get(key)) for key in ("pending_review", "blocked")]
    return {"": None if None in values else sum(values)}


def _match_rates(figures: dict) -> dict:
    rates = _dig(figures, "identity", "source_match_rates") or {}
    return {str(slug): _number(value) for slug, value in rates.items()}


METRICS: dict[str, Metric] = {
    metric.key: metric
    for metric in (
        Metric(
            "identity_coverage",
            "Identity coverage",
            RATIO,
            "Share of active profiles holding a verified canonical identifier (latest identity snapshot).",
            _scalar("identity", "match_rate"),
            default_comparison="below",
        ),
        Metric(
            "source_match_rate",
            "Match rate per source",
            RATIO,
            "Share of a source's profiles also carrying an identifier seen in another source.",
            _match_rates,
            labelled_by="source",
            default_comparison="below",
        ),
        Metric(
            "source_freshness_seconds",
            "Freshness per source",
            SECONDS,
            "Seconds since the source's last raw event.",
            _rows(("freshness",), "source", "seconds_since_last_event"),
            labelled_by="source",
        ),
        Metric(
            "source_freshness_breached",
            "Freshness SLA breached",
            FLAG,
            "1 when the source's last raw event is older than its freshness SLA, else 0.",
            _rows(("freshness",), "source", "sla_breached"),
            labelled_by="source",
        ),
        Metric(
            "ingestion_latency_p50",
            "Ingestion latency p50",
            SECONDS,
            "Median time from received to processed, raw events processed in the last hour.",
            _scalar("ingestion", "latency", "p50_seconds"),
        ),
        Metric(
            "ingestion_latency_p95",
            "Ingestion latency p95",
            SECONDS,
            "95th percentile of received to processed, raw events processed in the last hour.",
            _scalar("ingestion", "latency", "p95_seconds"),
        ),
        Metric(
            "ingestion_error_ratio",
            "Ingestion error rate",
            RATIO,
            "Share of raw events received in the last hour that were quarantined or failed.",
            _scalar("ingestion", "last_hour", "error_ratio"),
        ),
        Metric(
            "ingestion_quarantine_ratio",
            "Quarantine rate",
            RATIO,
            "Share of raw events received in the last hour that failed their contract (quarantined).",
            _scalar("ingestion", "last_hour", "quarantine_ratio"),
        ),
        Metric(
            "ingestion_pending",
            "Pending raw events",
            COUNT,
            "Raw events waiting to be processed.",
            _scalar("ingestion", "pending"),
        ),
        Metric(
            "ingestion_oldest_pending_age",
            "Oldest pending raw event",
            SECONDS,
            "Age of the oldest raw event still waiting to be processed (0 when none waits).",
            _scalar("ingestion", "oldest_pending_age_seconds", default_none_as_zero=True),
        ),
        Metric(
            "schema_drift_24h",
            "Schema drift",
            COUNT,
            "Unexpected properties or types seen in the last 24 hours.",
            _scalar("schema_drift", "seen_24h"),
        ),
        Metric(
            "review_backlog",
            "Review backlog",
            COUNT,
            "Identity links waiting for a review decision (pending review or blocked by a limit).",
            _review_backlog,
        ),
        Metric(
            "consent_propagation_p95",
            "Consent propagation p95",
            MILLISECONDS,
            "95th percentile of the time from a consent withdrawal to its suppression applied (30 days).",
            _scalar("consent_propagation", "p95_ms"),
        ),
        Metric(
            "consent_propagation_open_failures",
            "Consent propagation failures",
            COUNT,
            "Suppressions that failed and are not applied yet.",
            _scalar("consent_propagation", "open_failures"),
        ),
        Metric(
            "deletion_propagation_success",
            "Deletion propagation success",
            RATIO,
            "Share of deletion requests' destination steps that succeeded (30 days).",
            _scalar("deletion", "propagation", "success_ratio"),
            default_comparison="below",
        ),
        Metric(
            "privacy_requests_overdue",
            "Privacy requests overdue",
            COUNT,
            "Open deletion and access requests past their due date.",
            _scalar("deletion", "overdue"),
        ),
        Metric(
            "reconciliation_delta",
            "Reconciliation delta per destination",
            RATIO,
            "Share of planned operations not applied in the destination's last completed sync run.",
            _rows(("activations", "destinations"), "destination", "reconciliation_delta"),
            labelled_by="destination",
        ),
        Metric(
            "sync_failed_records_parked",
            "Parked sync records",
            COUNT,
            "Sync records parked as failed after their last attempt (24 hours).",
            _scalar("activations", "failed_records_parked_24h"),
        ),
        Metric(
            "worker_queue_depth",
            "Worker queue depth",
            COUNT,
            "Tasks waiting in the django-q broker, ORM or Redis (-1 when it cannot be read).",
            _scalar("worker", "queue_depth"),
        ),
        Metric(
            "event_partitions_ahead",
            "Event partitions ready ahead",
            COUNT,
            "Monthly partitions of the events table after the current month (PostgreSQL; the daily "
            "maintenance keeps 3): below 1 means the schedule has stopped.",
            _scalar("storage", "event_partitions_ahead"),
        ),
        Metric(
            "event_default_partition_rows",
            "Events in the default partition",
            COUNT,
            "Rows of the events table outside any monthly partition (PostgreSQL, estimate): events dated "
            "far in the past or future; `manage.py event_partitions --ensure --from` gives them months.",
            _scalar("storage", "event_default_partition_rows"),
        ),
    )
}

METRIC_CHOICES = [(metric.key, metric.label) for metric in METRICS.values()]


# -- snapshots --------------------------------------------------------------------------------------


def slot_of(moment: datetime) -> int:
    return int(moment.timestamp()) // SNAPSHOT_SLOT_SECONDS


@dataclass(frozen=True)
class SnapshotOutcome:
    snapshot: OperationsSnapshot | None
    created: bool
    pruned: int = 0


def operations_snapshot_capture(*, now: datetime | None = None) -> SnapshotOutcome:
    """Store the figures of this 5-minute slot, unless it already has its snapshot (safe to run twice,
    or in two workers at once: the slot is unique)."""
    now = now or timezone.now()
    slot = slot_of(now)
    existing = OperationsSnapshot.objects.filter(slot=slot).first()
    if existing is not None:
        return SnapshotOutcome(existing, created=False)
    started = time.monotonic()
    figures = collect_figures(now=now)
    duration_ms = int((time.monotonic() - started) * 1000)
    try:
        with transaction.atomic():
            snapshot = OperationsSnapshot.objects.create(
                captured_at=now, slot=slot, figures=figures, duration_ms=duration_ms
            )
    except IntegrityError:  # another worker stored this slot meanwhile
        return SnapshotOutcome(OperationsSnapshot.objects.filter(slot=slot).first(), created=False)
    logger.info("operations_snapshot_captured slot=%s duration_ms=%s", slot, duration_ms)
    return SnapshotOutcome(snapshot, created=True)


def operations_snapshots_prune(*, now: datetime | None = None) -> int:
    """Delete snapshots older than KEEP, in bounded batches (the captured_at index finds them)."""
    cutoff = (now or timezone.now()) - KEEP
    deleted = 0
    while True:
        ids = list(
            OperationsSnapshot.objects.filter(captured_at__lt=cutoff)
            .order_by("id")
            .values_list("id", flat=True)[:PRUNE_BATCH]
        )
        if not ids:
            return deleted
        deleted += OperationsSnapshot.objects.filter(id__in=ids).delete()[0]


def snapshot_latest() -> OperationsSnapshot | None:
    return OperationsSnapshot.objects.order_by("-slot").first()


def snapshots_recent(*, count: int) -> list[OperationsSnapshot]:
    """The newest `count` snapshots, newest first (alert rules look at their last N)."""
    return list(OperationsSnapshot.objects.order_by("-slot").only("id", "captured_at", "slot", "figures")[:count])


# -- series -----------------------------------------------------------------------------------------


def parse_range(text: str | None) -> str:
    return text if text in RANGES else DEFAULT_RANGE


def snapshots_in_range(*, range_key: str, now: datetime | None = None) -> list[tuple[datetime, dict]]:
    """(captured_at, figures) of the range, oldest first, at most MAX_POINTS rows: two indexed queries
    (a count, then every step-th slot)."""
    now = now or timezone.now()
    since = now - RANGES[parse_range(range_key)]
    rows = OperationsSnapshot.objects.filter(captured_at__gte=since, captured_at__lte=now)
    count = rows.count()
    if not count:
        return []
    step = max(1, math.ceil(count / MAX_POINTS))
    if step > 1:
        rows = rows.alias(phase=Mod(F("slot"), step)).filter(phase=0)
    newest_first = list(rows.order_by("-slot").values_list("captured_at", "figures")[:MAX_POINTS])
    return newest_first[::-1]


@dataclass
class Series:
    label: str
    points: list[tuple[datetime, float | None]]

    @property
    def values(self) -> list[float]:
        return [value for _, value in self.points if value is not None]

    @property
    def last(self) -> float | None:
        return self.points[-1][1] if self.points else None

    @property
    def minimum(self) -> float | None:
        return min(self.values) if self.values else None

    @property
    def maximum(self) -> float | None:
        return max(self.values) if self.values else None


def metric_series(metric: Metric, snapshots: list[tuple[datetime, dict]], *, label: str | None = None) -> list[Series]:
    """One series per label (one for an unlabelled metric), in label order; a label absent from a
    snapshot is a gap (None) there. `label` keeps that one label only."""
    per_snapshot = [(at, metric.values(figures)) for at, figures in snapshots]
    if metric.labelled_by:
        labels = sorted({name for _, values in per_snapshot for name in values})
        if label is not None:
            labels = [name for name in labels if name == label]
    else:
        labels = [""]
    return [Series(name, [(at, values.get(name)) for at, values in per_snapshot]) for name in labels]


def series_as_json(metric: Metric, series: list[Series], *, range_key: str) -> dict:
    return {
        "metric": metric.key,
        "label": metric.label,
        "unit": metric.unit,
        "labelled_by": metric.labelled_by or None,
        "range": range_key,
        "max_points": MAX_POINTS,
        "series": [
            {
                "label": item.label,
                "last": item.last,
                "min": item.minimum,
                "max": item.maximum,
                "points": [{"at": at.isoformat(), "value": value} for at, value in item.points],
            }
            for item in series
        ],
    }

"""Operational figures for monitoring: the same numbers as the health dashboard, as JSON and as
Prometheus text (exposition format 0.0.4).

Every figure is an aggregate query over a bounded recent window (or a count served by an index);
no table is loaded into Python. The one exception is the ingestion latency on SQLite, which has no
percentile function: there the percentiles come from the latest LATENCY_SAMPLE rows of the window.
"""

import logging
import math
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Count, IntegerField, Min, OuterRef, Q, Subquery, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.utils import timezone

from activations.models import Destination, SyncRecord, SyncRun, TriggerSend
from consent.propagation import latency_since, propagation_summary
from consent.requests import privacy_requests_overdue
from consent.requests_models import PrivacyRequest, PrivacyRequestStep
from identity.metrics import review_backlog
from identity.models import IdentityMetricSnapshot
from profiles.models import Profile, RawEvent, SchemaDrift, Source

logger = logging.getLogger(__name__)

LATENCY_SAMPLE = 10_000  # SQLite: ingestion latency percentiles over the latest processed rows
STATUS_WINDOW = timedelta(hours=24)  # raw events per status, schema drift, parked sync records
RECENT_WINDOW = timedelta(hours=1)  # ingestion latency, error ratio, trigger sends
DELETION_WINDOW = timedelta(days=30)  # deletion propagation success
OPEN_ALERTS_LISTED = 50  # Prometheus: one cdp_alert_open sample per open alert, at most this many


def _seconds(later: datetime, earlier: datetime | None) -> float | None:
    return round((later - earlier).total_seconds(), 3) if earlier else None


def _percentile_cont(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks: PostgreSQL's percentile_cont."""
    values = sorted(values)
    position = q * (len(values) - 1)
    low, high = math.floor(position), math.ceil(position)
    return values[low] + (values[high] - values[low]) * (position - low)


def _ingestion_latency(since: datetime) -> dict:
    processed = RawEvent.objects.filter(
        status=RawEvent.PROCESSED, processed_at__gte=since, processed_at__isnull=False
    ).order_by()
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(RawEvent._meta.db_table)
        sql = (
            "SELECT COUNT(*), "  # noqa: S608
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM processed_at - received_at)), "
            "percentile_cont(0.95) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM processed_at - received_at)) "
            f"FROM {table} WHERE status = %s AND processed_at >= %s"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [RawEvent.PROCESSED, since])
            count, p50, p95 = cursor.fetchone()
        if not count:
            return {"count": 0, "p50_seconds": None, "p95_seconds": None}
        return {"count": count, "p50_seconds": round(float(p50), 3), "p95_seconds": round(float(p95), 3)}
    rows = processed.order_by("-processed_at", "-id").values_list("received_at", "processed_at")[:LATENCY_SAMPLE]
    values = [(done - received).total_seconds() for received, done in rows]
    if not values:
        return {"count": 0, "p50_seconds": None, "p95_seconds": None}
    return {
        "count": len(values),
        "p50_seconds": round(_percentile_cont(values, 0.5), 3),
        "p95_seconds": round(_percentile_cont(values, 0.95), 3),
    }


def _ingestion(now: datetime) -> dict:
    statuses = [code for code, _ in RawEvent.STATUSES]
    recent = RawEvent.objects.filter(received_at__gte=now - STATUS_WINDOW).order_by()
    by_status = dict.fromkeys(statuses, 0)
    by_source: dict[str, dict] = {}
    for slug, status, count in recent.values_list("source__slug", "status").annotate(n=Count("id")):
        by_status[status] = by_status.get(status, 0) + count
        by_source.setdefault(slug, dict.fromkeys(statuses, 0))[status] = count
    pending = RawEvent.objects.filter(status=RawEvent.PENDING).aggregate(n=Count("id"), oldest=Min("received_at"))
    hour = RawEvent.objects.filter(received_at__gte=now - RECENT_WINDOW).aggregate(
        total=Count("id"),
        quarantined=Count("id", filter=Q(status=RawEvent.QUARANTINED)),
        failed=Count("id", filter=Q(status=RawEvent.FAILED)),
    )
    errors = hour["quarantined"] + hour["failed"]
    return {
        "window_seconds": int(STATUS_WINDOW.total_seconds()),
        "raw_events_by_status": by_status,
        "raw_events_by_source": dict(sorted(by_source.items())),
        "pending": pending["n"],
        "oldest_pending_age_seconds": _seconds(now, pending["oldest"]),
        "latency": _ingestion_latency(now - RECENT_WINDOW),
        "last_hour": {
            "received": hour["total"],
            "quarantined_or_failed": errors,
            "quarantined": hour["quarantined"],
            "failed": hour["failed"],
            "error_ratio": round(errors / hour["total"], 4) if hour["total"] else 0.0,
            "quarantine_ratio": round(hour["quarantined"] / hour["total"], 4) if hour["total"] else 0.0,
        },
    }


def _freshness(now: datetime) -> list[dict]:
    last = RawEvent.objects.filter(source=OuterRef("pk")).order_by("-received_at").values("received_at")[:1]
    rows = []
    for source in Source.objects.filter(is_active=True).annotate(last_received_at=Subquery(last)).order_by("slug"):
        age = _seconds(now, source.last_received_at)
        # A source that never sent anything breaches once it has existed longer than its SLA.
        reference = age if age is not None else _seconds(now, source.created_at)
        rows.append(
            {
                "source": source.slug,
                "last_received_at": source.last_received_at.isoformat() if source.last_received_at else None,
                "seconds_since_last_event": age,
                "sla_minutes": source.freshness_sla_minutes,
                "sla_breached": int(reference is not None and reference > source.freshness_sla_minutes * 60),
            }
        )
    return rows


def _identity(now: datetime) -> dict:
    backlog = review_backlog(now=now)
    snapshot = IdentityMetricSnapshot.objects.order_by("-captured_at", "-id").only("captured_at", "figures").first()
    rate, per_source = None, {}
    if snapshot is not None:
        rate = ((snapshot.figures or {}).get("coverage") or {}).get("rate")
        per_source = {
            row["slug"]: row.get("match_rate") for row in (snapshot.figures or {}).get("sources", []) if "slug" in row
        }
    return {
        "active_profiles": Profile.objects.filter(status=Profile.ACTIVE).count(),
        "review_backlog": {"pending_review": backlog["pending_review"], "blocked": backlog["blocked"]},
        # Coverage: share of active profiles holding a verified canonical identifier. `match_rate` is
        # its historical name, kept for existing consumers.
        "match_rate": rate,
        "coverage_rate": rate,
        # Per source: the share of its profiles also carrying an identifier seen in another source.
        "source_match_rates": dict(sorted(per_source.items())),
        "match_rate_captured_at": snapshot.captured_at.isoformat() if snapshot else None,
    }


def _activations(now: datetime) -> dict:
    last_run = (
        SyncRun.objects.filter(sync__destination=OuterRef("pk"), status=SyncRun.COMPLETED, is_dry_run=False)
        .order_by("-finished_at", "-created_at", "-id")
        .values("id")[:1]
    )
    destinations = list(Destination.objects.annotate(last_run_id=Subquery(last_run)).order_by("slug"))
    runs = SyncRun.objects.only("id", "planned", "applied", "finished_at").in_bulk(
        [d.last_run_id for d in destinations if d.last_run_id]
    )
    per_destination = []
    for destination in destinations:
        run = runs.get(destination.last_run_id)
        per_destination.append(
            {
                "destination": destination.slug,
                "last_run_id": run.pk if run else None,
                "last_run_finished_at": run.finished_at.isoformat() if run and run.finished_at else None,
                "planned": run.planned if run else None,
                "applied": run.applied if run else None,
                "reconciliation_delta": round(run.reconciliation_delta, 4) if run else None,
            }
        )
    sends = dict.fromkeys([code for code, _ in TriggerSend.STATUSES], 0)
    for status, count in (
        TriggerSend.objects.filter(created_at__gte=now - RECENT_WINDOW)
        .order_by()
        .values_list("status")
        .annotate(n=Count("id"))
    ):
        sends[status] = count
    return {
        "destinations": per_destination,
        "failed_records_parked_24h": SyncRecord.objects.filter(
            status=SyncRecord.FAILED, created_at__gte=now - STATUS_WINDOW
        ).count(),
        "trigger_sends_last_hour": sends,
    }


def _consent() -> dict:
    summary = propagation_summary(since=latency_since())
    overall = summary["overall"]
    return {
        "window_days": 30,
        "applied": overall["count"],
        "p50_ms": overall["p50_ms"],
        "p95_ms": overall["p95_ms"],
        "max_ms": overall["max_ms"],
        "open_failures": summary["open_failures"],
    }


def _deletion_propagation(now: datetime) -> dict:
    """Deletion requests' destination steps (delete the person in every destination) started in the
    window: the share that succeeded, and the operations they sent and saw applied. A failed step
    that is retried and succeeds counts once each way: the failure happened."""
    figures = PrivacyRequestStep.objects.filter(
        name="destinations",
        request__kind=PrivacyRequest.DELETION,
        started_at__gte=now - DELETION_WINDOW,
        outcome__in=(PrivacyRequestStep.OK, PrivacyRequestStep.FAILED),
    ).aggregate(
        ok=Count("id", filter=Q(outcome=PrivacyRequestStep.OK)),
        failed=Count("id", filter=Q(outcome=PrivacyRequestStep.FAILED)),
        sent=Sum(Cast(KT("detail__sent"), IntegerField())),
        applied=Sum(Cast(KT("detail__applied"), IntegerField())),
    )
    steps = figures["ok"] + figures["failed"]
    return {
        "window_days": DELETION_WINDOW.days,
        "steps_succeeded": figures["ok"],
        "steps_failed": figures["failed"],
        "success_ratio": round(figures["ok"] / steps, 4) if steps else None,
        "operations_sent": figures["sent"] or 0,
        "operations_applied": figures["applied"] or 0,
    }


def _deletion(now: datetime) -> dict:
    by_status = dict.fromkeys([code for code, _ in PrivacyRequest.STATUSES], 0)
    for status, count in PrivacyRequest.objects.order_by().values_list("status").annotate(n=Count("id")):
        by_status[status] = count
    return {
        "by_status": by_status,
        "overdue": privacy_requests_overdue(now=now).count(),
        "propagation": _deletion_propagation(now),
    }


def _alerts() -> dict:
    """Alerts open now (raised by the rules of the health dashboard)."""
    from cdp_site.operations_models import Alert

    rows = list(
        Alert.objects.filter(status=Alert.OPEN)
        .order_by("-raised_at", "-id")
        .values("id", "rule_id", "rule__name", "rule__metric", "label", "last_value", "raised_at")[
            : OPEN_ALERTS_LISTED + 1
        ]
    )
    listed = rows[:OPEN_ALERTS_LISTED]
    count = len(rows) if len(rows) <= OPEN_ALERTS_LISTED else Alert.objects.filter(status=Alert.OPEN).count()
    return {
        "open": count,
        "open_alerts": [
            {
                "id": row["id"],
                "rule_id": row["rule_id"],
                "rule": row["rule__name"],
                "metric": row["rule__metric"],
                "label": row["label"],
                "value": row["last_value"],
                "raised_at": row["raised_at"].isoformat(),
            }
            for row in listed
        ],
    }


def _queue_depth() -> int:
    """Tasks waiting in django-q's broker, the ORM table or the Redis list; -1 when it cannot be read."""
    from django_q.brokers import get_broker

    try:
        return int(get_broker().queue_size() or 0)
    except Exception:  # noqa: BLE001 - a broker outage must not break the dashboard or /metrics
        logger.warning("queue_depth_unavailable", exc_info=True)
        return -1


def _storage() -> dict:
    """The events table's monthly partitions (PostgreSQL): months ready after this one, and the rows
    (planner's estimate) in the default partition, which a stopped maintenance schedule lets grow."""
    from profiles.partitions import event_partitions, month_start

    partitions = event_partitions()
    if not partitions:
        return {"event_partitions_ahead": None, "event_default_partition_rows": None}
    this_month = month_start(timezone.now())
    default = next((p for p in partitions if p.start is None), None)
    return {
        "event_partitions_ahead": sum(1 for p in partitions if p.start and p.start > this_month),
        "event_default_partition_rows": max(default.rows, 0) if default else None,
    }


def collect_figures(now: datetime | None = None) -> dict:
    """Every operational figure as nested, JSON-ready data."""
    now = now or timezone.now()
    return {
        "generated_at": now.isoformat(),
        "ingestion": _ingestion(now),
        "freshness": _freshness(now),
        "identity": _identity(now),
        "schema_drift": {"seen_24h": SchemaDrift.objects.filter(last_seen_at__gte=now - STATUS_WINDOW).count()},
        "activations": _activations(now),
        "consent_propagation": _consent(),
        "deletion": _deletion(now),
        "worker": {"queue_depth": _queue_depth()},
        "storage": _storage(),
        "alerts": _alerts(),
    }


# -- Prometheus text exposition format 0.0.4 --------------------------------------------------------


def _escape_label(value) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _value(value) -> str:
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def _metrics(figures: dict) -> list[tuple[str, str, list[tuple[dict, object]]]]:
    """(name, help, [(labels, value)]) for every metric; samples whose value is None are left out."""
    ingestion, identity, activations = figures["ingestion"], figures["identity"], figures["activations"]
    consent, deletion = figures["consent_propagation"], figures["deletion"]
    latency = ingestion["latency"]
    return [
        (
            "cdp_ingestion_raw_events",
            "Raw events received in the last 24 hours, per status.",
            [({"status": s}, n) for s, n in ingestion["raw_events_by_status"].items()],
        ),
        (
            "cdp_ingestion_source_raw_events",
            "Raw events received in the last 24 hours, per source and status.",
            [
                ({"source": source, "status": s}, n)
                for source, counts in ingestion["raw_events_by_source"].items()
                for s, n in counts.items()
            ],
        ),
        ("cdp_ingestion_pending_raw_events", "Raw events waiting to be processed.", [({}, ingestion["pending"])]),
        (
            "cdp_ingestion_oldest_pending_age_seconds",
            "Age of the oldest pending raw event (0 when none is pending).",
            [({}, ingestion["oldest_pending_age_seconds"] or 0)],
        ),
        (
            "cdp_ingestion_latency_seconds",
            "Processing latency (processed_at - received_at) of raw events processed in the last hour.",
            [({"quantile": "0.5"}, latency["p50_seconds"]), ({"quantile": "0.95"}, latency["p95_seconds"])],
        ),
        (
            "cdp_ingestion_error_ratio",
            "Share of raw events received in the last hour that were quarantined or failed.",
            [({}, ingestion["last_hour"]["error_ratio"])],
        ),
        (
            "cdp_ingestion_quarantine_ratio",
            "Share of raw events received in the last hour that were quarantined (failed a contract).",
            [({}, ingestion["last_hour"].get("quarantine_ratio"))],
        ),
        (
            "cdp_source_freshness_seconds",
            "Seconds since the last raw event of each active source.",
            [({"source": row["source"]}, row["seconds_since_last_event"]) for row in figures["freshness"]],
        ),
        (
            "cdp_source_freshness_sla_breached",
            "1 when the source's last raw event is older than its freshness SLA, else 0.",
            [({"source": row["source"]}, row["sla_breached"]) for row in figures["freshness"]],
        ),
        ("cdp_identity_active_profiles", "Active profiles.", [({}, identity["active_profiles"])]),
        (
            "cdp_identity_review_backlog",
            "Identity links waiting for a review decision, per status.",
            [({"status": s}, n) for s, n in identity["review_backlog"].items()],
        ),
        (
            "cdp_identity_match_rate_ratio",
            "Identity coverage rate of the latest identity metrics snapshot.",
            [({}, identity["match_rate"])],
        ),
        (
            "cdp_identity_source_match_rate_ratio",
            "Share of a source's profiles also carrying an identifier seen in another source (latest snapshot).",
            [({"source": slug}, value) for slug, value in identity.get("source_match_rates", {}).items()],
        ),
        (
            "cdp_schema_drift_seen_24h",
            "Schema drift rows seen in the last 24 hours.",
            [({}, figures["schema_drift"]["seen_24h"])],
        ),
        (
            "cdp_sync_reconciliation_delta_ratio",
            "Share of planned operations not applied in the last completed real sync run, per destination.",
            [({"destination": row["destination"]}, row["reconciliation_delta"]) for row in activations["destinations"]],
        ),
        (
            "cdp_sync_failed_records_parked_24h",
            "Sync records parked as failed (created in the last 24 hours).",
            [({}, activations["failed_records_parked_24h"])],
        ),
        (
            "cdp_trigger_sends_last_hour",
            "Trigger sends created in the last hour, per status.",
            [({"status": s}, n) for s, n in activations["trigger_sends_last_hour"].items()],
        ),
        (
            "cdp_consent_propagation_latency_ms",
            "Consent withdrawal propagation latency over the last 30 days.",
            [({"quantile": "0.5"}, consent["p50_ms"]), ({"quantile": "0.95"}, consent["p95_ms"])],
        ),
        (
            "cdp_consent_propagation_latency_max_ms",
            "Longest consent withdrawal propagation latency over the last 30 days.",
            [({}, consent["max_ms"])],
        ),
        (
            "cdp_consent_propagation_open_failures",
            "Suppressions that failed and are not applied yet.",
            [({}, consent["open_failures"])],
        ),
        (
            "cdp_privacy_requests",
            "Privacy requests per status.",
            [({"status": s}, n) for s, n in deletion["by_status"].items()],
        ),
        ("cdp_privacy_requests_overdue", "Open privacy requests past their due date.", [({}, deletion["overdue"])]),
        (
            "cdp_deletion_propagation_success_ratio",
            "Share of deletion requests' destination steps that succeeded (last 30 days; absent when none ran).",
            [({}, deletion.get("propagation", {}).get("success_ratio"))],
        ),
        (
            "cdp_deletion_propagation_steps",
            "Deletion requests' destination steps in the last 30 days, per outcome.",
            [
                ({"outcome": "succeeded"}, deletion.get("propagation", {}).get("steps_succeeded")),
                ({"outcome": "failed"}, deletion.get("propagation", {}).get("steps_failed")),
            ],
        ),
        (
            "cdp_worker_queue_depth",
            "Tasks waiting in the django-q broker, ORM or Redis (-1 when it cannot be read).",
            [({}, figures["worker"]["queue_depth"])],
        ),
        (
            "cdp_events_partitions_ahead",
            "Monthly partitions of the events table ready after the current month (PostgreSQL).",
            [({}, figures.get("storage", {}).get("event_partitions_ahead"))],
        ),
        (
            "cdp_events_default_partition_rows",
            "Rows in the events table's default partition, planner's estimate (PostgreSQL).",
            [({}, figures.get("storage", {}).get("event_default_partition_rows"))],
        ),
        (
            "cdp_alerts_open",
            "Alerts of the health dashboard's rules that are open now.",
            [({}, figures.get("alerts", {}).get("open"))],
        ),
        (
            "cdp_alert_open",
            "1 for each open alert (at most 50 listed): its rule, metric and label.",
            [
                ({"rule_id": row["rule_id"], "rule": row["rule"], "metric": row["metric"], "label": row["label"]}, 1)
                for row in figures.get("alerts", {}).get("open_alerts", [])
            ],
        ),
    ]


def prometheus_text(figures: dict) -> str:
    """The figures in the Prometheus text exposition format 0.0.4 (every metric a gauge)."""
    lines = []
    for name, help_text, samples in _metrics(figures):
        lines.append(f"# HELP {name} {_escape_help(help_text)}")
        lines.append(f"# TYPE {name} gauge")
        seen = set()
        for labels, value in samples:
            key = tuple(sorted(labels.items()))
            if value is None or key in seen:
                continue
            seen.add(key)
            rendered = ",".join(f'{label}="{_escape_label(text)}"' for label, text in labels.items())
            lines.append(f"{name}{{{rendered}}} {_value(value)}" if rendered else f"{name} {_value(value)}")
    return "\n".join(lines) + "\n"

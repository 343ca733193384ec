"""EXPLAIN checks for the queries that read the events table (PostgreSQL).

Each check builds the query the way the page, segment or task does, runs EXPLAIN (ANALYZE,
BUFFERS, FORMAT JSON) and reads the plan: which partitions of the events table it touched, how
(index or sequential scan), and how long it took. A check fails when the query reads more months
than its time window covers, or when a query that should be served by an index scans a partition
instead. `manage.py explain_event_queries` prints them; the segment benchmark runs them on its data.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count, Q, QuerySet

from profiles.models import Event, Profile
from profiles.partitions import DEFAULT, PARENT, Partition, add_months, event_partitions, month_start

INDEX_SCANS = {"Index Scan", "Index Only Scan", "Bitmap Heap Scan"}
# Scanning a partition this small (empty future months, a near-empty default) is the right plan.
SMALL_PARTITION_ROWS = 5_000


@dataclass(frozen=True)
class PlanCheck:
    name: str
    used_by: str
    build: Callable[[datetime, dict], QuerySet]
    window_days: int | None = None  # the query reads only months overlapping this many days back
    open_ended: bool = False  # no upper bound on occurred_at: later months (future-dated events) too
    needs_index: bool = True  # every events partition it reads is read through an index


@dataclass
class PlanResult:
    check: PlanCheck
    partitions: list[str] = field(default_factory=list)
    scans: dict[str, str] = field(default_factory=dict)  # partition -> scan node type
    indexes: set[str] = field(default_factory=set)
    milliseconds: float = 0.0
    allowed_partitions: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {
            "name": self.check.name,
            "used_by": self.check.used_by,
            "partitions": len(self.partitions),
            "allowed_partitions": self.allowed_partitions,
            "scans": sorted(set(self.scans.values())),
            "indexes": sorted(self.indexes),
            "ms": round(self.milliseconds, 2),
            "ok": self.ok,
            "problems": self.problems,
        }


def _segment(definition: dict):
    from segments.compiler import segment_queryset

    def build(now: datetime, sample: dict) -> QuerySet:
        return segment_queryset(definition, now=now, resolve_segment=lambda slug: {}).only("id")

    return build


def _computed_count(now: datetime, sample: dict) -> QuerySet:
    # segments.computed: a count of one event type in the last 30 days, per active profile.
    events = Event.objects.filter(
        type=sample["type"],
        profile__status=Profile.ACTIVE,
        occurred_at__gte=now - timedelta(days=30),
        occurred_at__lte=now,
    ).order_by()
    return events.values("profile_id").annotate(value=Count("id")).values_list("profile_id", "value")


CHECKS = (
    PlanCheck(
        "profile timeline",
        "profile page and GET /api/v1/profiles/<id>/events/ (25 newest)",
        lambda now, s: (
            Event.objects.filter(profile_id=s["profile_id"])
            .select_related("source")
            .order_by("-occurred_at", "-id")[:25]
        ),
    ),
    PlanCheck(
        "segment: event count in 30 days, absence in 90 days",
        "segments (the benchmark's five-condition definition)",
        _segment(
            {
                "all": [
                    {"trait": "city", "op": "eq", "value": "Paris"},
                    {"trait": "age", "op": "gte", "value": 30},
                    {"event": "class.attended", "within_last_days": 30, "count": {"op": "gte", "value": 2}},
                    {"not": {"event": "order.completed", "within_last_days": 90}},
                    {"consent": "email_marketing"},
                ]
            }
        ),
        window_days=90,
    ),
    PlanCheck(
        "segment: did an event in 7 days",
        "segments (real-time re-evaluation of one profile)",
        lambda now, s: _segment({"all": [{"event": "booking.created", "within_last_days": 7}]})(now, s).filter(
            pk=s["profile_id"]
        ),
        window_days=7,
    ),
    PlanCheck(
        "computed trait: count in 30 days",
        "segments.computed refresh",
        _computed_count,
        window_days=30,
        needs_index=False,  # one type of six over a month: reading the month's partition is the plan
    ),
    PlanCheck(
        "trigger sweep: events of a type in 24 hours",
        "activations.triggers.fire_for_events (sweep)",
        lambda now, s: Event.objects.filter(type=s["type"], occurred_at__gte=now - timedelta(hours=24)).only(
            "id", "profile_id", "properties", "received_at"
        ),
        window_days=1,
        open_ended=True,
    ),
    PlanCheck(
        "events of processed raw events",
        "activations.triggers.after_batch, consent deletion",
        lambda now, s: Event.objects.filter(raw_event_id__in=s["raw_event_ids"]).values_list(
            "id", "profile_id", "received_at"
        ),
    ),
    PlanCheck(
        "event counts of two profiles",
        "merge review pair page",
        lambda now, s: (
            Event.objects.filter(profile_id__in=s["profile_ids"])
            .values("profile_id")
            .annotate(total=Count("id"), recent=Count("id", filter=Q(occurred_at__gte=now - timedelta(days=30))))
        ),
    ),
)


def sample_values(now: datetime) -> dict:
    """Real ids from the data: the most active profile of the last month (the worst timeline), a few
    raw events and the most frequent recent event type."""
    with connection.cursor() as cursor:
        recent_sql = f"SELECT profile_id, type FROM {PARENT} WHERE occurred_at >= %s AND occurred_at <= %s"  # noqa: S608
        cursor.execute(recent_sql + " ORDER BY occurred_at DESC LIMIT 1000", [now - timedelta(days=30), now])
        recent = cursor.fetchall()
        cursor.execute(f"SELECT raw_event_id FROM {PARENT} ORDER BY id DESC LIMIT 20")  # noqa: S608
        raw_ids = sorted({row[0] for row in cursor.fetchall()})
    if not recent:
        raise ValueError("no events in the 30 days before --now: nothing to explain")
    by_profile, by_type = {}, {}
    for profile_id, type_ in recent:
        by_profile[profile_id] = by_profile.get(profile_id, 0) + 1
        by_type[type_] = by_type.get(type_, 0) + 1
    busiest = sorted(by_profile, key=lambda pk: (-by_profile[pk], pk))
    return {
        "profile_id": busiest[0],
        "profile_ids": busiest[:2],
        "type": max(sorted(by_type), key=by_type.get),
        "raw_event_ids": raw_ids,
    }


def explain(
    check: PlanCheck,
    now: datetime,
    sample: dict,
    *,
    analyze: bool = True,
    without_seqscan: bool = False,
    partitions: list[Partition] | None = None,
) -> PlanResult:
    """`without_seqscan` asks whether an index *can* serve the query: on small data the planner
    rightly scans tiny partitions, so that is how the tests check index coverage."""
    queryset = check.build(now, sample)
    sql, params = queryset.query.sql_with_params()
    options = "ANALYZE, BUFFERS, FORMAT JSON" if analyze else "FORMAT JSON"
    with transaction.atomic(), connection.cursor() as cursor:
        if without_seqscan:
            cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN ({options}) {sql}", params)
        document = cursor.fetchone()[0]
    plan = (json.loads(document) if isinstance(document, str) else document)[0]
    result = PlanResult(check, milliseconds=plan.get("Execution Time", 0.0))
    _walk(plan["Plan"], result)
    result.partitions = sorted(result.scans)
    _judge(result, now, event_partitions() if partitions is None else partitions)
    return result


def _walk(node: dict, result: PlanResult) -> None:
    relation = node.get("Relation Name", "")
    events = relation == DEFAULT or relation.startswith(f"{PARENT}_p") or relation == PARENT
    if events:
        # Every partition left in the plan counts, executed or not: pruning is what is checked.
        result.scans.setdefault(relation, node["Node Type"])
    if node.get("Index Name") and events:
        result.indexes.add(_index_kind(node["Index Name"], relation))
    for child in node.get("Plans", ()):
        if events and child.get("Node Type") == "Bitmap Index Scan" and child.get("Index Name"):
            result.indexes.add(_index_kind(child["Index Name"], relation))
        _walk(child, result)


def _index_kind(index: str, relation: str) -> str:
    """Each partition's copy of an index is named after the partition: keep what is common."""
    return index.removeprefix(f"{relation}_")


def _judge(result: PlanResult, now: datetime, partitions: list[Partition]) -> None:
    check = result.check
    if check.window_days is not None:
        months = {month_start(now)}
        first = month_start(now - timedelta(days=check.window_days))
        while first < month_start(now):
            months.add(first)
            first = add_months(first, 1)
        existing = {p.start for p in partitions if p.start}
        if check.open_ended:
            months |= {start for start in existing if start > month_start(now)}
        # The months of the window, plus the default partition when a month of it has no partition.
        # An open end cannot rule out the default partition (it holds dates past the last month).
        result.allowed_partitions = len(months & existing) + (1 if months - existing or check.open_ended else 0)
        if len(result.partitions) > result.allowed_partitions:
            result.problems.append(
                f"reads {len(result.partitions)} partitions, the {check.window_days}-day window needs "
                f"{result.allowed_partitions}"
            )
    if check.needs_index:
        small = {p.name for p in partitions if p.rows < SMALL_PARTITION_ROWS}
        scanned = sorted(name for name, node in result.scans.items() if node not in INDEX_SCANS and name not in small)
        if scanned:
            result.problems.append(f"no index used on {', '.join(scanned[:3])}{'…' if len(scanned) > 3 else ''}")


def explain_all(now: datetime, *, analyze: bool = True, without_seqscan: bool = False) -> list[PlanResult]:
    sample, partitions = sample_values(now), event_partitions()
    return [
        explain(check, now, sample, analyze=analyze, without_seqscan=without_seqscan, partitions=partitions)
        for check in CHECKS
    ]


def table(results: list[PlanResult]) -> list[str]:
    lines = [f"{'query':<52} {'partitions':>10} {'scan':<30} {'ms':>9}  verdict"]
    for result in results:
        allowed = f"/{result.allowed_partitions}" if result.allowed_partitions is not None else ""
        scans = ", ".join(sorted(set(result.scans.values())))
        verdict = "ok" if result.ok else "; ".join(result.problems)
        lines.append(
            f"{result.check.name:<52} {f'{len(result.partitions)}{allowed}':>10} {scans:<30} "
            f"{result.milliseconds:>9.2f}  {verdict}"
        )
    return lines

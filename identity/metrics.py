"""Match-rate figures of the live identity graph, their snapshots (history) and the simulation's live inputs.

Every figure is computed by the database in a handful of aggregate queries: tables hold millions of
profiles and events, so nothing here loops over them in Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Count, Exists, Min, OuterRef, Q
from django.utils import timezone

from identity import domain
from identity.models import (
    BlockedValue,
    Identifier,
    IdentifierType,
    IdentityLink,
    IdentityMetricSnapshot,
    Merge,
    Unmerge,
)
from identity.simulation import DraftRule, rate
from profiles.models import Event, Profile, Source

HISTORY_DEFAULT = 168  # a week of hourly snapshots
HISTORY_MAX = 2000
TOP_BLOCK_REASONS = 10


# -- figures --------------------------------------------------------------------------------------


def identity_coverage() -> dict:
    """Active profiles, and those holding at least one verified canonical identifier."""
    verified_canonical = Identifier.objects.filter(
        profile=OuterRef("pk"), is_verified=True, identifier_type__role=domain.CANONICAL
    )
    figures = Profile.objects.filter(status=Profile.ACTIVE).aggregate(
        profiles=Count("pk"), covered=Count("pk", filter=Q(Exists(verified_canonical)))
    )
    return {**figures, "rate": rate(figures["covered"], figures["profiles"])}


def _source_match_sql() -> str:
    quote = connection.ops.quote_name
    identifier, event, profile = (
        quote(Identifier._meta.db_table),
        quote(Event._meta.db_table),
        quote(Profile._meta.db_table),
    )
    # event_keys collapses the event log to its distinct (source, profile, identifier) first, so the
    # large table is scanned once. members and carried are sets, so a join row is one profile of A
    # carrying one other source B, and the counts need no DISTINCT but one. Only hash joins and
    # aggregates: no correlated subquery, which PostgreSQL would run once per member row.
    return f"""
        WITH event_keys AS (
            SELECT DISTINCT source_id, profile_id, identifier_id FROM {event}
        ),
        provided AS (
            SELECT source_id, profile_id FROM {identifier} WHERE source_id IS NOT NULL
        ),
        members AS (
            SELECT x.source_id, x.profile_id
            FROM (
                SELECT source_id, profile_id FROM provided
                UNION
                SELECT source_id, profile_id FROM event_keys
            ) x
            JOIN {profile} p ON p.id = x.profile_id
            WHERE p.status = %s
        ),
        carried AS (
            SELECT source_id, profile_id FROM provided
            UNION
            SELECT k.source_id, i.profile_id FROM event_keys k JOIN {identifier} i ON i.id = k.identifier_id
        ),
        crossed AS (
            SELECT m.source_id, m.profile_id, c.source_id AS other_id
            FROM members m JOIN carried c ON c.profile_id = m.profile_id AND c.source_id <> m.source_id
        )
        SELECT source_id, CAST(NULL AS BIGINT), COUNT(*), CAST(NULL AS BIGINT) FROM members GROUP BY source_id
        UNION ALL
        SELECT source_id, CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), COUNT(DISTINCT profile_id)
        FROM crossed GROUP BY source_id
        UNION ALL
        SELECT source_id, other_id, COUNT(*), CAST(NULL AS BIGINT) FROM crossed GROUP BY source_id, other_id
    """  # noqa: S608 -- table names from model metadata, the one value is a parameter


def source_match_rates() -> tuple[list[dict], list[dict]]:
    """Per source: its profiles and the share also carrying an identifier seen in another source;
    per ordered pair (A, B): the share of A's profiles carrying an identifier seen in B."""
    with connection.cursor() as cursor:
        cursor.execute(_source_match_sql(), [Profile.ACTIVE])
        rows = cursor.fetchall()
    # Three row shapes: (A, None, profiles, None), (A, None, None, matched), (A, B, matched with B, None).
    members = {a: n for a, b, n, _ in rows if b is None and n is not None}
    matched = {a: k for a, b, _, k in rows if b is None and k is not None}
    pair_counts = {(a, b): n for a, b, n, _ in rows if b is not None}
    sources = list(Source.objects.order_by("name", "id").values_list("id", "slug", "name"))
    slugs = {source_id: slug for source_id, slug, _ in sources}
    per_source = []
    for source_id, slug, name in sources:
        profiles, found = members.get(source_id, 0), matched.get(source_id, 0)
        per_source.append(
            {
                "slug": slug,
                "name": name,
                "profiles": profiles,
                "matched_profiles": found,
                "match_rate": rate(found, profiles),
            }
        )
    # Every ordered pair of sources that have profiles, zeros included: a pair that never matches is news.
    with_profiles = [source_id for source_id, _, _ in sources if source_id in members]
    pairs = [
        {
            "source": slugs[a],
            "other": slugs[b],
            "profiles": members[a],
            "matched_profiles": pair_counts.get((a, b), 0),
            "match_rate": rate(pair_counts.get((a, b), 0), members[a]),
        }
        for a in with_profiles
        for b in with_profiles
        if a != b
    ]
    return per_source, pairs


def merge_figures() -> dict:
    by_rule = {
        row["rule"]: {"total": row["total"], "in_effect": row["in_effect"]}
        for row in Merge.objects.order_by()
        .values("rule")
        .annotate(total=Count("id"), in_effect=Count("id", filter=Q(unmerged_at__isnull=True)))
        .order_by("rule")
    }
    total = sum(row["total"] for row in by_rule.values())
    in_effect = sum(row["in_effect"] for row in by_rule.values())
    return {"total": total, "in_effect": in_effect, "unmerged": total - in_effect, "by_rule": by_rule}


def blocked_figures() -> dict:
    by_reason = list(
        IdentityLink.objects.filter(status=IdentityLink.BLOCKED)
        .order_by()
        .values("reason")
        .annotate(links=Count("id"))
        .order_by("-links", "reason")
    )
    return {
        "total": sum(row["links"] for row in by_reason),
        "by_reason": by_reason[:TOP_BLOCK_REASONS],
    }


def review_backlog(*, now=None) -> dict:
    """Links waiting for a person: pending review, or blocked by a limit, and not reviewed yet."""
    now = now or timezone.now()
    figures = IdentityLink.objects.filter(
        status__in=(IdentityLink.PENDING_REVIEW, IdentityLink.BLOCKED), reviewed_at__isnull=True
    ).aggregate(
        pending_review=Count("id", filter=Q(status=IdentityLink.PENDING_REVIEW)),
        blocked=Count("id", filter=Q(status=IdentityLink.BLOCKED)),
        oldest=Min("created_at"),
    )
    oldest = figures.pop("oldest")
    return {
        **figures,
        "total": figures["pending_review"] + figures["blocked"],
        "oldest_created_at": oldest.isoformat() if oldest else None,
        "oldest_age_seconds": int((now - oldest).total_seconds()) if oldest else None,
    }


def identity_metrics(*, now=None) -> dict:
    """Every figure, as JSON-ready data (the snapshot stores exactly this)."""
    now = now or timezone.now()
    coverage = identity_coverage()
    sources, pairs = source_match_rates()
    return {
        "profiles": coverage["profiles"],
        "coverage": {"covered": coverage["covered"], "rate": coverage["rate"]},
        "sources": sources,
        "pairs": pairs,
        "merges": merge_figures(),
        "unmerges": Unmerge.objects.count(),
        "blocked": blocked_figures(),
        "review_backlog": review_backlog(now=now),
    }


def identity_metrics_snapshot() -> IdentityMetricSnapshot:
    """Store the current figures, so the page and the API can show trends."""
    now = timezone.now()
    return IdentityMetricSnapshot.objects.create(captured_at=now, figures=identity_metrics(now=now))


def identity_metrics_latest(*, max_age: timedelta) -> IdentityMetricSnapshot | None:
    """The newest snapshot if it is younger than `max_age`: the page shows it instead of scanning
    the event table on every view (a few seconds at millions of events)."""
    return (
        IdentityMetricSnapshot.objects.filter(captured_at__gte=timezone.now() - max_age)
        .order_by("-captured_at", "-id")
        .first()
    )


def identity_metric_history(*, limit: int = HISTORY_DEFAULT) -> list[IdentityMetricSnapshot]:
    """The latest snapshots, oldest first."""
    limit = max(0, min(limit, HISTORY_MAX))
    return list(reversed(IdentityMetricSnapshot.objects.order_by("-captured_at", "-id")[:limit]))


# -- trends (pure) ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trend:
    label: str
    values: list[float | None]  # one per snapshot, oldest first; None where the figure was missing
    is_rate: bool

    @property
    def latest(self) -> float | None:
        return next((value for value in reversed(self.values) if value is not None), None)

    @property
    def first(self) -> float | None:
        return next((value for value in self.values if value is not None), None)

    @property
    def minimum(self) -> float | None:
        present = [value for value in self.values if value is not None]
        return min(present) if present else None

    @property
    def maximum(self) -> float | None:
        present = [value for value in self.values if value is not None]
        return max(present) if present else None

    @property
    def summary(self) -> tuple:
        return self.first, self.latest, self.minimum, self.maximum

    def sparkline_points(self, width: int = 160, height: int = 32) -> str:
        """SVG polyline points, drawn server-side (no chart library); the y axis is the series' range."""
        present = [(index, value) for index, value in enumerate(self.values) if value is not None]
        if not present:
            return ""
        low, high = self.minimum, self.maximum
        span = (high - low) or 1
        step = width / max(len(self.values) - 1, 1)
        return " ".join(
            f"{index * step:.1f},{height - 2 - (value - low) / span * (height - 4):.1f}" for index, value in present
        )


def _dig(figures: dict, *path):
    for key in path:
        if not isinstance(figures, dict) or key not in figures:
            return None
        figures = figures[key]
    return figures


def metric_trends(snapshots: list[IdentityMetricSnapshot]) -> list[Trend]:
    """The figures worth watching over time, one series each, from stored snapshots."""
    figures = [snapshot.figures for snapshot in snapshots]
    trends = [
        Trend("Identity coverage", [_dig(f, "coverage", "rate") for f in figures], is_rate=True),
        Trend("Active profiles", [_dig(f, "profiles") for f in figures], is_rate=False),
        Trend("Merges in effect", [_dig(f, "merges", "in_effect") for f in figures], is_rate=False),
        Trend("Unmerges", [_dig(f, "unmerges") for f in figures], is_rate=False),
        Trend("Blocked links", [_dig(f, "blocked", "total") for f in figures], is_rate=False),
        Trend("Review backlog", [_dig(f, "review_backlog", "total") for f in figures], is_rate=False),
    ]
    slugs = sorted({source["slug"] for f in figures for source in f.get("sources", [])})
    for slug in slugs:
        per_snapshot = [{s["slug"]: s for s in f.get("sources", [])}.get(slug, {}) for f in figures]
        trends.append(Trend(f"Match rate: {slug}", [row.get("match_rate") for row in per_snapshot], is_rate=True))
    return trends


def pair_matrix(sources: list[dict], pairs: list[dict]) -> list[dict]:
    """Rows of a source-by-source table of the pair match rates (None on the diagonal)."""
    by_pair = {(pair["source"], pair["other"]): pair for pair in pairs}
    present = [source["slug"] for source in sources if source["profiles"]]
    return [{"source": a, "cells": [by_pair.get((a, b)) for b in present]} for a in present]


# -- the simulation's live inputs -------------------------------------------------------------------


def simulation_live_rules() -> list[DraftRule]:
    """The live identifier types as draft rules: the simulation form starts from these."""
    return [
        DraftRule(
            slug=identifier_type.slug,
            role=identifier_type.role,
            normaliser=identifier_type.normaliser,
            limit_per_profile=identifier_type.limit_per_profile,
            priority=identifier_type.priority,
        )
        for identifier_type in IdentifierType.objects.order_by("-priority", "slug")
    ]


def simulation_blocked_values() -> list[tuple[str | None, str]]:
    return [
        (slug, value)
        for slug, value in BlockedValue.objects.values_list("identifier_type__slug", "value").order_by("id")
    ]


def simulation_region() -> str:
    return settings.PHONE_DEFAULT_REGION

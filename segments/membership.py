"""Segment membership: who is in each published segment, since when, decided by which version.

The batch refresh recomputes a whole segment with set-based SQL built from the compiled audience
query (entries are INSERT ... SELECT, exits one UPDATE), so no profile list passes through Python.
Real-time re-evaluation does the same for the few profiles an event batch touched, and only for
the segments whose definition depends on what changed. Holdout membership is a deterministic
function of (segment, profile), so a person stays in the same group on every refresh.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from segments import domain
from segments.models import Segment, SegmentMembership, SegmentRefresh
from segments.selectors import resolve_published

logger = logging.getLogger(__name__)

# A stable, evenly spread number from 0 to 99 per person and segment, in integer arithmetic both
# databases share without overflow. Quadratic in the profile id: a linear hash left runs of
# consecutive ids (people who signed up together) all on one side of the split.
HOLDOUT_BUCKET_SQL = (
    "((((({profile} %% 1000003) * ({profile} %% 1000003)) %% 1000003) * 40503 "
    "+ ({profile} %% 1000003) * 7919 + {segment} * 104729) %% 1000003) %% 100"
)


def holdout_bucket(*, profile_id: int, segment_id: int) -> int:
    """The same bucket in Python, for tests, triggers and the profile page."""
    q = profile_id % 1000003
    return ((q * q) % 1000003 * 40503 + q * 7919 + segment_id * 104729) % 1000003 % 100


@dataclass
class RefreshResult:
    segment: str
    members: int = 0
    entered: int = 0
    exited: int = 0
    seconds: float = 0.0


def _audience_sql(segment: Segment, now: datetime, profile_ids: list[int] | None) -> tuple[str, list]:
    from segments.compiler import segment_queryset

    audience = segment_queryset(segment.published_version.definition, now=now, resolve_segment=resolve_published)
    if profile_ids is not None:
        audience = audience.filter(id__in=profile_ids)
    sql, params = audience.values("id").query.sql_with_params()
    return sql, list(params)


@transaction.atomic
def segment_membership_refresh(
    *, segment: Segment, now: datetime | None = None, profile_ids: list[int] | None = None
) -> RefreshResult:
    """Bring the open memberships of one segment in line with its published definition, for every
    profile or only `profile_ids`. Safe to run twice: the second run changes nothing."""
    now = now or timezone.now()
    started = time.perf_counter()
    segment = Segment.objects.select_for_update(of=("self",)).select_related("published_version").get(pk=segment.pk)
    result = RefreshResult(segment=segment.slug)
    if segment.published_version is None:
        return result
    version = segment.published_version
    audience, params = _audience_sql(segment, now, profile_ids)
    table = connection.ops.quote_name(SegmentMembership._meta.db_table)
    bucket = HOLDOUT_BUCKET_SQL.format(profile="a.id", segment="%s")
    scope, scope_params = "", []
    if profile_ids is not None:
        if not profile_ids:
            return result
        scope = f" AND m.profile_id IN ({', '.join(['%s'] * len(profile_ids))})"
        scope_params = list(profile_ids)
    with connection.cursor() as cursor:
        # Exits first: open memberships whose profile left the audience (or is no longer active).
        cursor.execute(
            f"UPDATE {table} SET exited_at = %s, exit_version_id = %s WHERE id IN ("  # noqa: S608
            f"SELECT m.id FROM {table} m WHERE m.segment_id = %s AND m.exited_at IS NULL{scope} "
            f"AND m.profile_id NOT IN ({audience}))",
            [now, version.pk, segment.pk, *scope_params, *params],
        )
        result.exited = cursor.rowcount
        cursor.execute(
            f"INSERT INTO {table} (segment_id, profile_id, version_id, entered_at, is_holdout) "  # noqa: S608
            f"SELECT %s, a.id, %s, %s, {bucket} < %s FROM ({audience}) a "
            f"WHERE NOT EXISTS (SELECT 1 FROM {table} m WHERE m.segment_id = %s AND m.profile_id = a.id "
            f"AND m.exited_at IS NULL)",
            [segment.pk, version.pk, now, segment.pk, segment.holdout_percent, *params, segment.pk],
        )
        result.entered = cursor.rowcount
    result.seconds = time.perf_counter() - started
    if profile_ids is None:
        result.members = SegmentMembership.objects.filter(segment=segment, exited_at__isnull=True).count()
        SegmentRefresh.objects.create(
            segment=segment,
            version=version,
            computed_at=now,
            members=result.members,
            entered=result.entered,
            exited=result.exited,
            seconds=result.seconds,
        )
    return result


def segment_memberships_refresh_all(*, now: datetime | None = None) -> list[RefreshResult]:
    """The scheduled batch: every published segment, one transaction each (so one failing
    definition does not hold back the others). Time windows expire people here."""
    results = []
    for segment in Segment.objects.filter(published_version__isnull=False).order_by("slug"):
        try:
            results.append(segment_membership_refresh(segment=segment, now=now))
        except Exception:
            logger.exception("segment_refresh_failed segment=%s", segment.slug)
    return results


def segments_depending_on(*, event_types: set[str], trait_keys: set[str]) -> list[Segment]:
    """Published segments whose definition (through referenced segments too) reads one of these
    event types or traits, or depends on consent, identifiers or merge confidence, which any
    processed event may change."""
    published = list(Segment.objects.filter(published_version__isnull=False).select_related("published_version"))
    definitions = {segment.slug: segment.published_version.definition for segment in published}
    relevant = []
    for segment in published:
        needs = domain.definition_dependencies(segment.published_version.definition, definitions)
        if (
            needs.event_types & event_types
            or needs.trait_keys & trait_keys
            or needs.identifier_types
            or needs.purposes
            or _mentions(segment.published_version.definition, "merge_confidence", definitions)
        ):
            relevant.append(segment)
    return relevant


def profiles_reevaluate(*, profile_ids: list[int], event_types: list[str], trait_keys: list[str]) -> int:
    """Real-time membership: the segments that depend on what changed, for these profiles only.
    Returns the number of entries and exits written."""
    if not profile_ids:
        return 0
    changed = 0
    now = timezone.now()
    for segment in segments_depending_on(event_types=set(event_types), trait_keys=set(trait_keys)):
        for start in range(0, len(profile_ids), 400):  # two lists of ids per statement: SQLite's cap
            result = segment_membership_refresh(segment=segment, now=now, profile_ids=profile_ids[start : start + 400])
            changed += result.entered + result.exited
    return changed


def _mentions(definition, kind: str, definitions: dict) -> bool:
    """Whether a condition of this kind appears in the definition or a segment it refers to."""
    found = []
    domain.walk_conditions(
        definition, lambda condition: found.append(kind in condition), resolve_segment=definitions.get
    )
    return any(found)

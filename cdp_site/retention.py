"""Retention: each data class is kept for its policy's number of days, then purged by the database.

What purging means per class (RetentionPolicy.DESCRIPTIONS says the same on the page):

- raw_events: processed and dropped raw events keep their row (the (source, external_id) dedup key,
  and the parent of their events, which Event.raw_event cascades from) but lose their payload and
  headers; the payload becomes `{"_purged": {...}}`, which is also how a later run knows to skip it.
- quarantined: the same for quarantined and failed raw events, which can then no longer be replayed.
- events: timeline events that occurred before the cutoff are deleted. Nothing references an event
  by foreign key; profile traits, lifetime revenue and consent records derived from them stay.

Every purge is set-based and batched: a batch selects at most `batch_size` ids in the database,
purges them and adds its counts to the PurgeRun in one transaction, so the log always matches what
was committed, a killed run loses nothing, and a second run (or two at once: rows are claimed with
SKIP LOCKED on PostgreSQL) finds only what is left.

Indexes: the raw event batches read a partial index of not-yet-purged, finished raw events by
received_at (PostgreSQL, created by cdp_site 0004_governance), which shrinks as rows are purged.
Event batches go type by type over the existing (type, occurred_at) index, the types found with a
loose index scan, so the hottest table gets no new index.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.db import connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from cdp_site.audit import audit_record
from cdp_site.governance_models import MAX_KEEP_DAYS, PurgeRun, RetentionPolicy
from profiles.models import Event, RawEvent

logger = logging.getLogger(__name__)

PURGED_KEY = "_purged"
BATCH_SIZE = 2000
# The scheduled task stops starting batches after this long (django-q2 kills it at its 300 s
# timeout); the run is logged as partial and tomorrow's run carries on where it stopped.
TASK_MAX_SECONDS = 240
RAW_EVENT_DUE_INDEX = "cdp_retention_raw_event_due"

# Why these defaults (a privacy officer changes them on the retention page):
# - raw payloads 90 days: long enough to replay after a mapper bug is found in a monthly review
#   and to answer a GDPR access request (one month, extendable) from the original payloads.
# - quarantined payloads 30 days: they are held only to be fixed and replayed; kept longer they
#   are unprocessed personal data nobody is using.
# - events 730 days: two years of history for segments, lifetime value and year-over-year
#   comparisons; beyond that the profile's derived traits carry what marketing needs.
DEFAULT_KEEP_DAYS = {
    RetentionPolicy.RAW_EVENTS: 90,
    RetentionPolicy.EVENTS: 730,
    RetentionPolicy.QUARANTINED: 30,
}
# Shortest-lived first, so a run cut short by its time budget did the most urgent work.
ORDER = (RetentionPolicy.QUARANTINED, RetentionPolicy.RAW_EVENTS, RetentionPolicy.EVENTS)
RAW_STATUSES = {
    RetentionPolicy.RAW_EVENTS: (RawEvent.PROCESSED, RawEvent.DROPPED),
    RetentionPolicy.QUARANTINED: (RawEvent.QUARANTINED, RawEvent.FAILED),
}
QUARANTINE_PURGED_ERROR = "Payload purged by the retention policy: it can no longer be replayed."


@dataclass(frozen=True)
class Plan:
    data_class: str
    label: str
    keep_days: int
    cutoff: datetime


# -- reads -------------------------------------------------------------------------------------


def retention_policies() -> QuerySet[RetentionPolicy]:
    return RetentionPolicy.objects.order_by("data_class")


def purge_runs(*, limit: int = 50) -> QuerySet[PurgeRun]:
    return PurgeRun.objects.order_by("-started_at", "-id")[:limit]


def retention_plan(*, now: datetime | None = None) -> list[Plan]:
    """The active policies in the order they are applied, each with its cutoff."""
    now = now or timezone.now()
    labels = dict(RetentionPolicy.DATA_CLASSES)
    policies = {policy.data_class: policy for policy in RetentionPolicy.objects.filter(is_active=True)}
    return [
        Plan(
            data_class,
            labels[data_class],
            policies[data_class].keep_days,
            now - timedelta(days=policies[data_class].keep_days),
        )
        for data_class in ORDER
        if data_class in policies
    ]


def raw_payloads_due(data_class: str, cutoff: datetime) -> QuerySet[RawEvent]:
    """Raw events of the class received before the cutoff whose payload is still there.

    Written to match the partial index: its predicate is implied by these conditions.
    """
    return (
        RawEvent.objects.filter(status__in=RAW_STATUSES[data_class], received_at__lt=cutoff)
        .exclude(payload__has_key=PURGED_KEY)
        .order_by("received_at")
    )


def events_due(event_type: str, cutoff: datetime) -> QuerySet[Event]:
    return Event.objects.filter(type=event_type, occurred_at__lt=cutoff).order_by("occurred_at")


def event_types() -> list[str]:
    """The distinct event types. PostgreSQL: a loose index scan of (type, occurred_at), one index
    probe per type instead of reading every event."""
    if connection.vendor != "postgresql":
        return list(Event.objects.order_by("type").values_list("type", flat=True).distinct())
    table = connection.ops.quote_name(Event._meta.db_table)
    sql = f"""
        WITH RECURSIVE types(type) AS (
            (SELECT type FROM {table} ORDER BY type LIMIT 1)
            UNION ALL
            SELECT (SELECT e.type FROM {table} e WHERE e.type > types.type ORDER BY e.type LIMIT 1)
            FROM types WHERE types.type IS NOT NULL
        )
        SELECT type FROM types WHERE type IS NOT NULL
    """  # noqa: S608 - only the table name, from model metadata, is interpolated
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return [row[0] for row in cursor.fetchall()]


def retention_preview(*, now: datetime | None = None) -> list[dict]:
    """What a run now would purge, per active policy (counts only; nothing changes)."""
    rows = []
    for plan in retention_plan(now=now):
        if plan.data_class == RetentionPolicy.EVENTS:
            count = sum(events_due(event_type, plan.cutoff).count() for event_type in event_types())
        else:
            count = raw_payloads_due(plan.data_class, plan.cutoff).count()
        rows.append(
            {
                "data_class": plan.data_class,
                "label": plan.label,
                "keep_days": plan.keep_days,
                "cutoff": plan.cutoff,
                "count": count,
            }
        )
    return rows


# -- writes ------------------------------------------------------------------------------------


class _OutOfTime(Exception):
    pass


def retention_apply(
    *,
    triggered_by: str,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
    max_seconds: float | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> PurgeRun:
    """Apply every active policy; returns the PurgeRun that logs it. Errors are logged on the run
    and raised again (so the task shows as failed)."""
    now = now or timezone.now()
    plans = retention_plan(now=now)
    run = PurgeRun.objects.create(
        started_at=now,
        triggered_by=triggered_by[:150],
        cutoffs={plan.data_class: plan.cutoff.isoformat() for plan in plans},
        keep_days={plan.data_class: plan.keep_days for plan in plans},
        counts={plan.data_class: 0 for plan in plans},
    )
    deadline = time.monotonic() + max_seconds if max_seconds else None
    counts = dict(run.counts)
    try:
        for plan in plans:
            for batch in _batches(plan, batch_size, purged_on=now):
                more = True
                while more:
                    if deadline is not None and time.monotonic() > deadline:
                        raise _OutOfTime
                    # One transaction: the purge and its line in the log commit together.
                    with transaction.atomic():
                        purged, more = batch()
                        if purged:
                            counts[plan.data_class] += purged
                            PurgeRun.objects.filter(pk=run.pk).update(counts=counts, batches=F("batches") + 1)
                    if purged and progress:
                        progress(plan.data_class, counts[plan.data_class])
    except _OutOfTime:
        _finish(run, PurgeRun.PARTIAL)
    except Exception as error:
        _finish(run, PurgeRun.FAILED, error=f"{type(error).__name__}: {error}"[:2000])
        logger.exception("retention_failed run_id=%s", run.pk)
        raise
    else:
        _finish(run, PurgeRun.COMPLETED)
    logger.info("retention_applied run_id=%s status=%s counts=%s", run.pk, run.status, run.counts)
    return run


def _finish(run: PurgeRun, status: str, *, error: str = "") -> None:
    # Counts as committed: a batch that failed rolled its own count back.
    run.refresh_from_db(fields=["counts", "batches"])
    run.status, run.error, run.finished_at = status, error, timezone.now()
    run.save(update_fields=["status", "error", "finished_at"])


def _batches(plan: Plan, batch_size: int, *, purged_on: datetime) -> list[Callable[[], tuple[int, bool]]]:
    """Units of work of one policy. Calling a unit purges one batch inside the caller's transaction
    and says how many rows it purged and whether more may be due."""
    if plan.data_class == RetentionPolicy.EVENTS:
        return [partial(_event_batch, plan, event_type, batch_size) for event_type in event_types()]
    marker = {PURGED_KEY: {"by": "retention", "on": purged_on.date().isoformat(), "keep_days": plan.keep_days}}
    changes = {"payload": marker, "headers": {}}
    if plan.data_class == RetentionPolicy.QUARANTINED:
        changes["error"] = QUARANTINE_PURGED_ERROR  # mapping errors can quote payload values
    return [partial(_raw_payload_batch, plan, batch_size, changes)]


def _raw_payload_batch(plan: Plan, batch_size: int, changes: dict) -> tuple[int, bool]:
    due = raw_payloads_due(plan.data_class, plan.cutoff).select_for_update(skip_locked=True)
    ids = list(due.values_list("id", flat=True)[:batch_size])
    if not ids:
        return 0, False
    # The rows are locked (PostgreSQL; SQLite serialises writers), and the update still states the
    # conditions it relies on, so it can never blank a row that is no longer due.
    rows = RawEvent.objects.filter(id__in=ids, status__in=RAW_STATUSES[plan.data_class], received_at__lt=plan.cutoff)
    return rows.update(**changes), len(ids) == batch_size


def _event_batch(plan: Plan, event_type: str, batch_size: int) -> tuple[int, bool]:
    due = events_due(event_type, plan.cutoff).select_for_update(skip_locked=True)
    ids = list(due.values_list("id", flat=True)[:batch_size])
    if not ids:
        return 0, False
    deleted, _ = Event.objects.filter(id__in=ids, occurred_at__lt=plan.cutoff).delete()
    return deleted, len(ids) == batch_size


@transaction.atomic
def retention_policy_update(*, data_class: str, keep_days: int, is_active: bool, actor: str) -> RetentionPolicy:
    """Change one policy; every change is in the audit log with the values before and after."""
    if not 1 <= int(keep_days) <= MAX_KEEP_DAYS:
        raise ValueError(f"keep_days must be between 1 and {MAX_KEEP_DAYS}")
    policy = RetentionPolicy.objects.select_for_update().get(data_class=data_class)
    before = {"keep_days": policy.keep_days, "is_active": policy.is_active}
    after = {"keep_days": int(keep_days), "is_active": bool(is_active)}
    if before == after:
        return policy
    policy.keep_days, policy.is_active, policy.updated_by = after["keep_days"], after["is_active"], actor[:150]
    policy.save(update_fields=["keep_days", "is_active", "updated_by", "updated_at"])
    audit_record(
        actor=actor,
        action="retention.policy_change",
        target=policy,
        summary=(
            f"{policy.get_data_class_display()}: {before['keep_days']} → {after['keep_days']} days, "
            f"{'active' if after['is_active'] else 'off'}"
        ),
        data_class=data_class,
        before=before,
        after=after,
    )
    return policy

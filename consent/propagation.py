"""A consent withdrawal reaches every destination that needs the purpose at once, with proof.

For one withdrawal (a `ConsentRecord` with is_granted False):

- every sync to a destination whose `consent_purpose` is the purpose and that holds the person
  (a non-empty `SyncState` fingerprint) gets a removal now (`activations.direct.remove_for_withdrawal`:
  remove, or delete where the contract has no removal) and one `SuppressionApplied` row with the time
  the destination accepted it and the latency from when we learned of the withdrawal (`recorded_at`);
- every other destination needing the purpose gets one `not_needed` row: it holds nothing, and
  syncs and triggers check consent at send time, so the suppression is in force there already;
- a withdrawal that needs no work gets one marker row (no destination): no destination needs the
  purpose, it repeats an earlier withdrawal nobody holds the person since, or a later grant is in
  force (then removing them would be wrong: the summary says granted and the next run re-adds them).

Latency figures count `applied` rows only. `not_needed` rows are left out on purpose: nothing was
sent, their "latency" is our own bookkeeping delay, and the tracking API repeats a person's
consent preferences on every event, so they would swamp the percentiles with near-zero values and
flatter the figure that matters (how long a destination kept using someone who withdrew). They are
counted and listed instead.

Rows are the durable state: the first pass writes `pending` rows (claimed for a few minutes), then
sends. A crash leaves them pending with an expired claim; a failure leaves them `failed` with a
next attempt time. The sweeper (every minute) retries both with backoff and propagates withdrawals
that have no rows at all (a lost task, or the ingestion pipeline), so nothing depends on the queue.
Running any of it twice is safe: rows are unique per (withdrawal, destination, sync), and a removal
only goes to syncs that still hold the person.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from activations.direct import remove_for_withdrawal
from activations.models import Destination, SuppressionApplied, Sync, SyncState
from consent.models import ConsentRecord
from profiles.models import Profile

logger = logging.getLogger(__name__)

CLAIM = timedelta(minutes=5)  # longer than one round of inline retries (activations.direct: 30 s per sync)
MAX_ROUNDS = 8  # 1, 2, 4, 8, 16, 32, 60 minutes apart: about three hours, then a person decides
SWEEP_LOOKBACK = timedelta(days=7)  # withdrawals older than this without rows are left to a person
SWEEP_BATCH = 200
RECHECK = timedelta(hours=24)  # how long after a withdrawal the sweeper checks no sync run re-sent the person
LATENCY_DAYS = 30
LATENCY_SAMPLE = 10_000  # SQLite: percentiles over the most recent rows (PostgreSQL computes them all)


def _ms(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return round(max((later - earlier).total_seconds() * 1000, 0.0), 1)


def retry_delay(rounds: int) -> timedelta:
    return timedelta(minutes=min(2 ** max(rounds - 1, 0), 60))


# -- propagating one withdrawal ---------------------------------------------------------------------


def propagate_withdrawal(consent_record: ConsentRecord | int) -> list[SuppressionApplied]:
    """Plan and send the suppression of one withdrawal. Returns its rows (existing ones untouched:
    a second call for the same withdrawal sends nothing; the sweeper retries what failed)."""
    record_id = consent_record if isinstance(consent_record, int) else consent_record.pk
    record, pending = _plan(record_id)
    if record is not None and pending:
        _send(record, pending)
    return list(SuppressionApplied.objects.filter(consent_record_id=record_id).select_related("destination", "sync"))


def _lock(queryset):
    return queryset.select_for_update() if connection.features.has_select_for_update else queryset


@transaction.atomic
def _plan(record_id: int) -> tuple[ConsentRecord | None, list[SuppressionApplied]]:
    # The record's row lock makes two planners of one withdrawal (task and sweeper) take turns.
    record = _lock(ConsentRecord.objects.filter(pk=record_id, is_granted=False)).first()
    if record is None or SuppressionApplied.objects.filter(consent_record_id=record_id).exists():
        return None, []
    now = timezone.now()
    base = {
        "consent_record": record,
        "profile_id": record.profile_id,
        "purpose": record.purpose,
        "requested_at": record.recorded_at,
    }

    def marker(status: str, message: str) -> tuple[None, list]:
        SuppressionApplied.objects.create(
            **base,
            status=status,
            applied_at=now,
            latency_ms=_ms(now, record.recorded_at),
            captured_latency_ms=_ms(now, record.captured_at),
            message=message,
        )
        return None, []

    profile = Profile.objects.filter(pk=record.profile_id).only("status", "consent").first()
    if profile is None or profile.status == Profile.DELETED:
        return marker(SuppressionApplied.NOT_NEEDED, "the person was deleted: the deletion request removes them")
    entry = (profile.consent or {}).get(record.purpose) or {}
    if entry.get("is_granted") is True:
        return marker(
            SuppressionApplied.SUPERSEDED,
            f"a later grant (captured {str(entry.get('captured_at', ''))[:19]}) is in force: nothing removed",
        )
    destinations = list(Destination.objects.filter(consent_purpose=record.purpose).order_by("pk"))
    if not destinations:
        return marker(SuppressionApplied.NOT_NEEDED, f"no destination needs {record.purpose}")
    held: dict[int, list[int]] = defaultdict(list)
    for destination_id, sync_id in (
        SyncState.objects.filter(profile_id=record.profile_id, sync__destination__consent_purpose=record.purpose)
        .exclude(fingerprint="")
        .order_by("sync_id")
        .values_list("sync__destination_id", "sync_id")
    ):
        held[destination_id].append(sync_id)
    if not held and _repeats_a_withdrawal(record):
        return marker(SuppressionApplied.NOT_NEEDED, "repeats an earlier withdrawal; no destination holds them")
    rows = []
    for destination in destinations:
        for sync_id in held.get(destination.pk, []):
            rows.append(SuppressionApplied(**base, destination=destination, sync_id=sync_id, claimed_until=now + CLAIM))
        if not held.get(destination.pk):
            rows.append(
                SuppressionApplied(
                    **base,
                    destination=destination,
                    status=SuppressionApplied.NOT_NEEDED,
                    applied_at=now,
                    latency_ms=_ms(now, record.recorded_at),
                    captured_latency_ms=_ms(now, record.captured_at),
                    message="not held there; syncs and triggers check consent at send time",
                )
            )
    SuppressionApplied.objects.bulk_create(rows)
    pending = [row for row in rows if row.status == SuppressionApplied.PENDING]
    return record, list(
        SuppressionApplied.objects.filter(pk__in=[row.pk for row in pending]).select_related("destination", "sync")
    )


def _repeats_a_withdrawal(record: ConsentRecord) -> bool:
    """The person's previous record for this purpose (by capture time) was a withdrawal too."""
    previous = (
        ConsentRecord.objects.filter(profile_id=record.profile_id, purpose=record.purpose)
        .filter(Q(captured_at__lt=record.captured_at) | Q(captured_at=record.captured_at, pk__lt=record.pk))
        .order_by("-captured_at", "-id")
        .values_list("is_granted", flat=True)
        .first()
    )
    return previous is False


def _send(record: ConsentRecord, rows: list[SuppressionApplied], *, note: str = "") -> None:
    """One round: remove the person from every sync that still holds them, then record each answer
    on its row. Syncs that no longer hold them (a sync run or an earlier round removed them) count
    as applied. `note` prefixes the message of rows for syncs that were not planned."""
    try:
        outcomes = remove_for_withdrawal(profile_id=record.profile_id, purpose=record.purpose)
    except Exception as error:  # a connector bug must not lose the rows: they fail and are retried
        logger.exception("withdrawal_propagation_failed consent_record_id=%s", record.pk)
        outcomes, crashed = [], f"{type(error).__name__}: {error}"
    else:
        crashed = ""
    now = timezone.now()
    by_sync = {outcome.sync: outcome for outcome in outcomes}
    planned = {row.sync.slug for row in rows if row.sync_id}
    for row in rows:
        outcome = by_sync.get(row.sync.slug) if row.sync_id else None
        row.attempts += 1
        row.claimed_until = None
        if crashed:
            _fail(row, crashed, retryable=True, now=now)
        elif outcome is None:
            _apply(row, record, now, message="no longer held there (removed by a sync run or an earlier round)")
        elif outcome.ok:
            row.operation, row.status_code = outcome.operation, outcome.status_code
            _apply(row, record, outcome.applied_at or now, message=outcome.message or "")
        else:
            row.operation, row.status_code = outcome.operation, outcome.status_code
            _fail(row, outcome.message or "the destination refused it", retryable=outcome.operation != "none", now=now)
        row.save()
    # A sync that started holding the person after planning got the removal too: record it.
    for slug, outcome in by_sync.items():
        if slug in planned:
            continue
        sync = Sync.objects.select_related("destination").get(slug=slug)
        row, _ = SuppressionApplied.objects.get_or_create(
            consent_record=record,
            destination=sync.destination,
            sync=sync,
            defaults={"profile_id": record.profile_id, "purpose": record.purpose, "requested_at": record.recorded_at},
        )
        row.attempts += 1
        row.operation, row.status_code, row.claimed_until = outcome.operation, outcome.status_code, None
        if outcome.ok:
            _apply(row, record, outcome.applied_at or now, message=note + (outcome.message or ""))
        else:
            _fail(row, note + (outcome.message or ""), retryable=outcome.operation != "none", now=now)
        row.save()


def _apply(row: SuppressionApplied, record: ConsentRecord, applied_at: datetime, *, message: str) -> None:
    row.status, row.applied_at, row.next_attempt_at = SuppressionApplied.APPLIED, applied_at, None
    row.latency_ms = _ms(applied_at, record.recorded_at)
    row.captured_latency_ms = _ms(applied_at, record.captured_at)
    row.message = message[:500]


def _fail(row: SuppressionApplied, message: str, *, retryable: bool, now: datetime) -> None:
    row.status = SuppressionApplied.FAILED
    if retryable and row.attempts < MAX_ROUNDS:
        row.next_attempt_at = now + retry_delay(row.attempts)
        row.message = message[:500]
    else:
        row.next_attempt_at = None
        why = f"gave up after {row.attempts} rounds" if retryable else "cannot be sent"
        row.message = f"{why} — handle it in the destination by hand: {message}"[:500]


# -- many withdrawals: the task, the pipeline hook, the sweeper --------------------------------------


def withdrawals_propagate(*, consent_record_ids: list[int]) -> dict:
    """Propagate each of these withdrawals (grants among them are ignored); one failing does not
    hold back the others."""
    done, failed = 0, 0
    for record_id in sorted(set(consent_record_ids)):
        try:
            propagate_withdrawal(record_id)
            done += 1
        except Exception:
            failed += 1
            logger.exception("withdrawal_propagation_failed consent_record_id=%s; the sweeper retries", record_id)
    return {"propagated": done, "errors": failed}


def withdrawals_enqueue(consent_record_ids: list[int]) -> None:
    """Hand withdrawals to a worker now. Call after commit; if the broker is down the sweeper
    finds them anyway (they have no rows)."""
    if not consent_record_ids:
        return
    try:
        from django_q.tasks import async_task

        async_task(
            "consent.tasks_propagation.withdrawals_propagate_task",
            consent_record_ids=sorted(set(consent_record_ids)),
            q_options={"task_name": "consent_withdrawals_propagate"},
        )
    except Exception:
        logger.exception("withdrawal_enqueue_failed ids=%s; the sweeper will propagate them", consent_record_ids)


def after_pipeline_consent(*, raw_event_ids: list[int] | None = None, consent_record_ids: list[int] | None = None):
    """The ingestion worker's hook, called once its batch has committed: hand the batch's
    withdrawals to a worker. Never raises (ingestion must not fail for this; the sweeper is the
    safety net)."""
    try:
        ids = list(consent_record_ids or [])
        if raw_event_ids:
            for start in range(0, len(raw_event_ids), 500):
                ids += ConsentRecord.objects.filter(
                    raw_event_id__in=raw_event_ids[start : start + 500], is_granted=False
                ).values_list("id", flat=True)
        elif ids:
            ids = list(ConsentRecord.objects.filter(pk__in=ids, is_granted=False).values_list("id", flat=True))
        withdrawals_enqueue(ids)
    except Exception:
        logger.exception("after_pipeline_consent_failed; the sweeper will propagate")


def withdrawals_unpropagated(*, now: datetime | None = None):
    """Withdrawals of the sweep window that have no suppression rows yet, oldest first."""
    now = now or timezone.now()
    return (
        ConsentRecord.objects.filter(is_granted=False, recorded_at__gte=now - SWEEP_LOOKBACK)
        .filter(~Exists(SuppressionApplied.objects.filter(consent_record_id=OuterRef("pk"))))
        .order_by("id")
    )


def suppressions_retry_due(*, now: datetime | None = None, limit: int = SWEEP_BATCH) -> int:
    """Retry failed rows whose next attempt is due and pending rows whose claim expired (a worker
    died mid-send). Returns the number of rows retried."""
    now = now or timezone.now()
    with transaction.atomic():
        due = SuppressionApplied.objects.filter(
            Q(status=SuppressionApplied.FAILED, next_attempt_at__lte=now)
            | Q(status=SuppressionApplied.PENDING, claimed_until__lt=now)
        )
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)
        ids = list(due.order_by("id").values_list("id", flat=True)[:limit])
        SuppressionApplied.objects.filter(pk__in=ids).update(
            status=SuppressionApplied.PENDING, claimed_until=now + CLAIM, next_attempt_at=None
        )
    by_record: dict[int, list[SuppressionApplied]] = defaultdict(list)
    for row in SuppressionApplied.objects.filter(pk__in=ids).select_related("destination", "sync").order_by("id"):
        by_record[row.consent_record_id].append(row)
    for record_id, rows in by_record.items():
        try:
            _retry(ConsentRecord.objects.get(pk=record_id), rows)
        except Exception:
            logger.exception("withdrawal_retry_failed consent_record_id=%s", record_id)
    return len(ids)


def _retry(record: ConsentRecord, rows: list[SuppressionApplied]) -> None:
    profile = Profile.objects.filter(pk=record.profile_id).only("status", "consent").first()
    entry = ((profile.consent or {}) if profile else {}).get(record.purpose) or {}
    if profile is not None and profile.status != Profile.DELETED and entry.get("is_granted") is True:
        # Granted again since: they may stay where they are (the next run would re-add them anyway).
        for row in rows:
            row.status, row.claimed_until, row.next_attempt_at = SuppressionApplied.SUPERSEDED, None, None
            row.message = f"a later grant (captured {str(entry.get('captured_at', ''))[:19]}) is in force"
            row.save()
        return
    _send(record, rows)


def suppressions_recheck(*, now: datetime | None = None) -> int:
    """A sync run that read its audience before a withdrawal can send the person again after the
    removal (its send phase does not re-read consent). For people who withdrew recently and still
    have not granted again, remove them again from any sync that accepted them after the
    suppression, and record it on the withdrawal's row for that sync. Returns how many people."""
    now = now or timezone.now()
    done = SuppressionApplied.objects.filter(
        requested_at__gte=now - RECHECK,
        status__in=[SuppressionApplied.APPLIED, SuppressionApplied.NOT_NEEDED],
        applied_at__isnull=False,
    )
    latest: dict[tuple[int, str], tuple[datetime, int]] = {}
    for profile_id, purpose, applied_at, record_id in done.order_by("applied_at", "id").values_list(
        "profile_id", "purpose", "applied_at", "consent_record_id"
    ):
        latest[(profile_id, purpose)] = (applied_at, record_id)
    people = sorted({profile_id for profile_id, _ in latest})
    again: set[tuple[int, str]] = set()
    for start in range(0, len(people), 500):
        for profile_id, purpose, accepted_at in (
            SyncState.objects.filter(profile_id__in=people[start : start + 500], accepted_at__isnull=False)
            .exclude(fingerprint="")
            .values_list("profile_id", "sync__destination__consent_purpose", "accepted_at")
        ):
            suppressed = latest.get((profile_id, purpose))
            if suppressed is not None and accepted_at > suppressed[0]:
                again.add((profile_id, purpose))
    for profile_id, purpose in sorted(again):
        profile = Profile.objects.filter(pk=profile_id).only("status", "consent").first()
        if profile is None or ((profile.consent or {}).get(purpose) or {}).get("is_granted") is True:
            continue  # granted again since: being synced is right
        record = ConsentRecord.objects.get(pk=latest[(profile_id, purpose)][1])
        logger.warning("withdrawal_reheld profile_id=%s purpose=%s: removing again", profile_id, purpose)
        _send(record, [], note="removed again (a sync run re-sent them after the withdrawal): ")
    return len(again)


def withdrawals_sweep(*, now: datetime | None = None) -> dict:
    """Every minute: propagate withdrawals nothing propagated yet, retry what is due, and remove
    again anyone a sync run in flight re-sent after their withdrawal."""
    now = now or timezone.now()
    ids = list(withdrawals_unpropagated(now=now).values_list("id", flat=True)[:SWEEP_BATCH])
    result = withdrawals_propagate(consent_record_ids=ids) if ids else {"propagated": 0, "errors": 0}
    if ids:
        logger.warning("withdrawals_swept count=%s (no task propagated them)", len(ids))
    result["retried"] = suppressions_retry_due(now=now)
    result["removed_again"] = suppressions_recheck(now=now)
    return result


# -- reads: the latency page and the API ------------------------------------------------------------


def latency_since(days: int = LATENCY_DAYS) -> datetime:
    return timezone.now() - timedelta(days=days)


def _figures(values: list[float]) -> dict:
    """Nearest-rank percentiles (PostgreSQL's percentile_disc), so both databases agree."""
    if not values:
        return {"count": 0, "p50_ms": None, "p95_ms": None, "max_ms": None}
    values = sorted(values)

    def rank(q: float) -> float:
        index = max(-(-int(q * 1000) * len(values) // 1000) - 1, 0)  # ceil(q * n) - 1
        return round(values[index], 1)

    return {"count": len(values), "p50_ms": rank(0.5), "p95_ms": rank(0.95), "max_ms": round(values[-1], 1)}


def _latency_by_destination(since: datetime) -> dict[int | None, dict]:
    """{destination id: figures, None: overall} over applied rows requested since `since`."""
    applied = SuppressionApplied.objects.filter(
        status=SuppressionApplied.APPLIED, requested_at__gte=since, latency_ms__isnull=False
    )
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(SuppressionApplied._meta.db_table)
        sql = (
            "SELECT destination_id, GROUPING(destination_id), COUNT(*), "  # noqa: S608
            "percentile_disc(0.5) WITHIN GROUP (ORDER BY latency_ms), "
            "percentile_disc(0.95) WITHIN GROUP (ORDER BY latency_ms), MAX(latency_ms) "
            f"FROM {table} WHERE status = %s AND requested_at >= %s AND latency_ms IS NOT NULL "
            "GROUP BY GROUPING SETS ((destination_id), ())"
        )
        figures: dict[int | None, dict] = {None: _figures([])}
        with connection.cursor() as cursor:
            cursor.execute(sql, [SuppressionApplied.APPLIED, since])
            for destination_id, is_total, count, p50, p95, highest in cursor.fetchall():
                if not count:
                    continue  # the grand total row of an empty period
                figures[None if is_total else destination_id] = {
                    "count": count,
                    "p50_ms": round(p50, 1),
                    "p95_ms": round(p95, 1),
                    "max_ms": round(highest, 1),
                }
        return figures
    sample = list(applied.order_by("-requested_at", "-id").values_list("destination_id", "latency_ms")[:LATENCY_SAMPLE])
    per: dict[int | None, list[float]] = defaultdict(list)
    for destination_id, latency in sample:
        per[destination_id].append(latency)
    figures = {destination_id: _figures(values) for destination_id, values in per.items()}
    figures[None] = _figures([latency for _, latency in sample])
    return figures


def propagation_summary(*, since: datetime) -> dict:
    """Latency (p50/p95/max ms, applied rows) overall and per destination, with status counts and
    the failures still open. The page and the API both read this."""
    latency = _latency_by_destination(since)
    statuses = [code for code, _ in SuppressionApplied.STATUSES]
    counts: dict[int, dict] = defaultdict(lambda: dict.fromkeys(statuses, 0))
    for destination_id, status, count in (
        SuppressionApplied.objects.filter(requested_at__gte=since, destination__isnull=False)
        .order_by()
        .values_list("destination_id", "status")
        .annotate(n=Count("id"))
    ):
        counts[destination_id][status] = count
    destinations = Destination.objects.filter(Q(consent_purpose__gt="") | Q(pk__in=list(counts))).order_by("name")
    rows = [
        {
            "destination": destination,
            "purpose": destination.consent_purpose,
            "latency": latency.get(destination.pk) or _figures([]),
            "statuses": counts[destination.pk] if destination.pk in counts else dict.fromkeys(statuses, 0),
        }
        for destination in destinations
    ]
    open_failures = SuppressionApplied.objects.filter(status=SuppressionApplied.FAILED)
    return {
        "since": since,
        "overall": latency[None],
        "destinations": rows,
        "open_failures": open_failures.count(),
        "awaiting": withdrawals_unpropagated().count(),
    }


def failures_open(limit: int = 100):
    """Failed suppressions, oldest request first (the longest a destination has kept someone)."""
    return (
        SuppressionApplied.objects.filter(status=SuppressionApplied.FAILED)
        .select_related("destination", "sync", "consent_record__source")
        .order_by("requested_at", "id")[:limit]
    )


def recent_withdrawals(*, since: datetime, limit: int = 200) -> list[dict]:
    """The most recent per-destination suppressions (`limit` rows), grouped by withdrawal."""
    rows = (
        SuppressionApplied.objects.filter(requested_at__gte=since, destination__isnull=False)
        .select_related("destination", "sync", "consent_record__source")
        .order_by("-requested_at", "-consent_record_id", "destination__name", "id")[:limit]
    )
    grouped: dict[int, dict] = {}
    for row in rows:
        group = grouped.setdefault(row.consent_record_id, {"record": row.consent_record, "rows": []})
        group["rows"].append(row)
    for group in grouped.values():
        group["has_failure"] = any(row.status == SuppressionApplied.FAILED for row in group["rows"])
    return list(grouped.values())

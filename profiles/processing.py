"""From pending raw events to profiles: claim, map, check contracts, resolve identity, write.

A batch is claimed with `SELECT ... FOR UPDATE SKIP LOCKED` (PostgreSQL) inside one transaction
that also writes everything the batch produces and marks the rows processed. A worker killed
half-way rolls the whole batch back, so the rows are pending again and nothing is applied twice.
Raw event status is the durable record of pending work; django-q2 tasks only nudge.
"""

from __future__ import annotations

import logging
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from cdp_site.db import insert_rows, update_rows
from consent.models import ConsentRecord
from consent.sealing import seal_traits, vault_store
from identity.locks import identity_lock, is_deadlock
from identity.resolver import BatchResolver, Observed, ProfileState, find
from profiles import traits as trait_rules
from profiles.contracts import Contract, check_event
from profiles.domain import CanonicalEvent, MappingError
from profiles.mappers import mapper_for
from profiles.models import Event, EventContract, Profile, RawEvent, SchemaDrift, SourceIdentifier, TraitValue

logger = logging.getLogger(__name__)


@dataclass
class ProcessResult:
    claimed: int = 0
    processed: int = 0
    quarantined: int = 0
    failed: int = 0
    events: int = 0
    dropped: int = 0  # named a tombstoned identifier (a deletion request): acknowledged, nothing created

    def add(self, other: ProcessResult) -> None:
        for name in ("claimed", "processed", "quarantined", "failed", "events", "dropped"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class _Accepted:
    raw: RawEvent
    events: list[CanonicalEvent]


@dataclass
class _ProfileDelta:
    """What a batch adds to one (root) profile."""

    traits: list = field(default_factory=list)  # (key, value, provenance entry, identifier state)
    consent: list = field(default_factory=list)  # (purpose, is_granted, captured_at, source_id)
    revenue: Decimal = Decimal("0")
    first_seen_at: datetime | None = None
    last_seen_at: datetime | None = None

    def seen(self, at: datetime) -> None:
        self.first_seen_at = at if self.first_seen_at is None else min(self.first_seen_at, at)
        self.last_seen_at = at if self.last_seen_at is None else max(self.last_seen_at, at)


def raw_events_process(
    *, limit: int | None = None, batch_size: int | None = None, pending_before: datetime | None = None
) -> ProcessResult:
    """Process pending raw events until none are left (or `limit` are claimed)."""
    from cdp_site.deployment_keys import deployment_keys_verify

    deployment_keys_verify()  # another machine's keys would duplicate people and revive erased ones
    batch_size = batch_size or settings.PROCESSING_BATCH_SIZE
    total = ProcessResult()
    while limit is None or total.claimed < limit:
        size = batch_size if limit is None else min(batch_size, limit - total.claimed)
        result = _process_batch(size, pending_before)
        if result.claimed == 0:
            break
        total.add(result)
    return total


def raw_events_sweep() -> ProcessResult:
    """The sweeper: claim raw events left pending for too long (a lost task, a killed worker)."""
    cutoff = timezone.now() - timedelta(seconds=settings.SWEEPER_PENDING_AFTER_SECONDS)
    result = raw_events_process(pending_before=cutoff)
    if result.claimed:
        logger.warning("raw_events_swept claimed=%s processed=%s", result.claimed, result.processed)
    return result


def raw_events_replay(*, raw_event_ids: list[int]) -> int:
    """Put quarantined or failed raw events back in the queue and process them now."""
    with transaction.atomic():
        count = (
            RawEvent.objects.filter(id__in=raw_event_ids, status__in=[RawEvent.QUARANTINED, RawEvent.FAILED])
            # Retention purged the payload: nothing left to replay.
            .exclude(payload__has_key="_purged")
            .update(status=RawEvent.PENDING, error="")
        )
    if count:
        raw_events_process()
    return count


def _claim(size: int, pending_before: datetime | None) -> list[int]:
    """Lock a batch of pending rows for this transaction; other workers skip them (PostgreSQL).

    SQLite has no row locks, but its write transactions are serialised (BEGIN IMMEDIATE).
    The attempt is counted by the same transaction that records the outcome.
    """
    rows = RawEvent.objects.filter(status=RawEvent.PENDING)
    if pending_before is not None:
        rows = rows.filter(received_at__lt=pending_before)
    if connection.features.has_select_for_update_skip_locked:
        rows = rows.select_for_update(skip_locked=True)
    return list(rows.order_by("id").values_list("id", flat=True)[:size])


def _lock_identity() -> None:
    # One resolver at a time: two workers must never interleave on the same component.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # A commit lost in a crash only leaves these raw events pending, to be redone: the
            # results and the statuses commit together, so skipping the flush wait is safe.
            cursor.execute("SET LOCAL synchronous_commit = off")
    identity_lock()


def _process_batch(size: int, pending_before: datetime | None) -> ProcessResult:
    ids: list[int] = []
    try:
        with transaction.atomic():
            ids = _claim(size, pending_before)
            if not ids:
                return ProcessResult()
            raws = list(RawEvent.objects.filter(id__in=ids).select_related("source").order_by("id"))
            return _apply(raws)
    except Exception:
        if not ids:
            raise
        logger.exception("raw_event_batch_failed; retrying its events one by one")
    # One bad event must not hold back the others: retry each alone, isolating the failure.
    total = ProcessResult()
    for raw_id in ids:
        total.add(_process_single(raw_id))
    return total


def _process_single(raw_id: int, attempts: int = 3) -> ProcessResult:
    try:
        with transaction.atomic():
            raw = (
                RawEvent.objects.select_for_update()
                .select_related("source")
                .filter(pk=raw_id, status=RawEvent.PENDING)
                .first()
            )
            if raw is None:
                return ProcessResult()
            return _apply([raw])
    except Exception as error:
        if is_deadlock(error) and attempts > 1:
            # The whole transaction rolled back: running it again is safe. The identity lock makes
            # this rare (resolvers never interleave), but row locks elsewhere can still cross.
            logger.warning("raw_event_deadlock_retry raw_event_id=%s", raw_id)
            return _process_single(raw_id, attempts - 1)
        detail = "".join(traceback.format_exception_only(type(error), error)).strip()
        RawEvent.objects.filter(pk=raw_id, status=RawEvent.PENDING).update(
            status=RawEvent.FAILED,
            error=f"processing failed: {detail}"[:2000],
            processed_at=timezone.now(),
            attempts=F("attempts") + 1,
        )
        logger.exception("raw_event_failed raw_event_id=%s", raw_id)
        return ProcessResult(claimed=1, failed=1)


def _active_contracts() -> dict[str, Contract]:
    return {
        c.event_type: Contract(c.event_type, c.required or {}, c.optional or {})
        for c in EventContract.objects.filter(is_active=True)
    }


def _apply(raws: list[RawEvent]) -> ProcessResult:
    now = timezone.now()
    result = ProcessResult(claimed=len(raws))
    contracts = _active_contracts()
    statuses: dict[str, list[tuple[int, str]]] = defaultdict(list)
    accepted: list[_Accepted] = []
    drift: Counter = Counter()

    for raw in raws:
        try:
            events = mapper_for(raw.source.kind)(raw)
        except MappingError as error:
            statuses[RawEvent.QUARANTINED].append((raw.pk, f"mapping: {error}"))
            continue
        except Exception as error:  # a mapper bug: keep the event, say why, replay after a fix
            statuses[RawEvent.FAILED].append((raw.pk, f"mapper error: {type(error).__name__}: {error}"))
            continue
        violations, unknown = [], []
        for event in events:
            if event.type is None:
                if event.occurred_at is None or event.occurred_at.tzinfo is None:
                    violations.append("occurred_at must be a timezone-aware timestamp")
                continue
            check = check_event(contracts.get(event.type), event.type, event.occurred_at, event.properties)
            violations.extend(check.violations)
            unknown.extend((event.type, name) for name in check.unknown_properties)
        if violations:
            statuses[RawEvent.QUARANTINED].append((raw.pk, "contract: " + "; ".join(violations)))
            continue
        for event_type, name in unknown:
            drift[(raw.source_id, event_type, name)] += 1
        accepted.append(_Accepted(raw, events))

    _lock_identity()
    resolver = BatchResolver()
    # Deletion requests: an event naming a tombstoned identifier is dropped before resolution.
    accepted = _drop_tombstoned(resolver, accepted, statuses)
    resolver.preload(
        [
            normalised
            for item in accepted
            for event in item.events
            for observed in event.identifiers
            if (normalised := resolver.normalise(Observed(observed.type, observed.value, observed.is_verified)))
        ]
    )

    # Decide identity for every event, in arrival order.
    planned = []  # (raw, sequence, event, target profile state, primary identifier state)
    sent = _SentIdentifiers(resolver)
    for item in accepted:
        raw = item.raw
        evidence = {"raw_event_id": raw.pk, "source": raw.source.slug, "external_id": raw.external_id}
        resolved = []
        for sequence, event in enumerate(item.events):
            observed = [Observed(o.type, o.value, o.is_verified) for o in event.identifiers]
            target, primary = resolver.observe(
                observed,
                source_id=raw.source_id,
                seen_at=event.occurred_at,
                evidence={**evidence, "event_type": event.type or "", "sequence": sequence},
            )
            if target is None:
                break
            resolved.append((raw, sequence, event, target, primary))
        if len(resolved) != len(item.events):
            statuses[RawEvent.QUARANTINED].append(
                (raw.pk, "identity: no usable identifier (missing, invalid or blocked values)")
            )
            continue
        for _raw, _sequence, event, _target, _primary in resolved:
            sent.add(raw.source_id, event)
        planned.extend(resolved)
        statuses[RawEvent.PROCESSED].append((raw.pk, ""))

    vault_entries: dict = {}  # personal trait values, sealed (consent/sealing.py)
    deltas = _deltas(planned, vault_entries)
    vault_store(vault_entries)
    existing = Profile.objects.in_bulk([p.id for p in resolver.profiles.values()])

    def create_profiles(states: list[ProfileState]) -> None:
        rows = [Profile(created_at=now, updated_at=now) for _ in states]
        Profile.objects.bulk_create(rows, batch_size=500)
        for state, row in zip(states, rows, strict=True):
            state.id = row.pk
            existing[row.pk] = row

    resolver.write_identity(create_profiles=create_profiles)
    sent.write()
    result.events = _write_events(planned, now)
    _write_profiles(resolver, existing, deltas, now)
    _write_drift(drift, now)
    _write_statuses(statuses, now)
    _nudge_segments(resolver, planned)
    result.processed = len(statuses[RawEvent.PROCESSED])
    result.quarantined = len(statuses[RawEvent.QUARANTINED])
    result.failed = len(statuses[RawEvent.FAILED])
    result.dropped = len(statuses[RawEvent.DROPPED])
    return result


class _SentIdentifiers:
    """Which source sent which identifier in this batch (Identifier.source keeps only the first
    source): one INSERT ... ON CONFLICT DO NOTHING per batch into SourceIdentifier, for the source
    audit's identifier overlap. Pairs already stored cost an index probe, nothing more."""

    def __init__(self, resolver: BatchResolver):
        self.resolver = resolver
        self.seen: dict[tuple[int, int], list] = {}  # (source id, id(identifier state)) -> [state, first, last]

    def add(self, source_id: int, event: CanonicalEvent) -> None:
        resolver = self.resolver
        for observed in event.identifiers:
            normalised = resolver.normalise(Observed(observed.type, observed.value, observed.is_verified))
            if normalised is None:
                continue
            rule, value = normalised
            # The resolver's own cache of blind indexes: no HMAC is computed twice.
            state = resolver.identifiers.get((rule.id, resolver._lookup_hash(rule, value)))
            if state is None:
                continue
            entry = self.seen.get((source_id, id(state)))
            if entry is None:
                self.seen[(source_id, id(state))] = [state, event.occurred_at, event.occurred_at]
            else:
                entry[1], entry[2] = min(entry[1], event.occurred_at), max(entry[2], event.occurred_at)

    def write(self) -> None:
        """After write_identity: every state has its id."""
        rows = sorted(
            (source_id, state.id, state.rule.id, first, last)
            for (source_id, _), (state, first, last) in self.seen.items()
            if state.id is not None
        )
        insert_rows(SourceIdentifier, SOURCE_IDENTIFIER_FIELDS, rows, ignore_conflicts=True)


SOURCE_IDENTIFIER_FIELDS = ["source", "identifier", "identifier_type", "first_seen_at", "last_seen_at"]


def _nudge_segments(resolver: BatchResolver, planned) -> None:
    """Once the batch commits, re-evaluate the segments that depend on what it changed, for the
    profiles it touched only (merged-away ones included, so they leave their segments)."""
    profile_ids = [root.id for root in resolver.touched_roots()] + [merge.absorbed.id for merge in resolver.merges]
    if not profile_ids:
        return
    event_types = {event.type for _raw, _sequence, event, _target, _primary in planned if event.type}
    trait_keys = {key for _raw, _sequence, event, _target, _primary in planned for key in event.traits}

    raw_event_ids = sorted({raw.id for raw, _sequence, _event, _target, _primary in planned})
    withdrawing = sorted(
        {raw.id for raw, _sequence, event, _target, _primary in planned if any(not c.is_granted for c in event.consent)}
    )
    since = timezone.now()

    def reevaluate():
        from activations.triggers import after_batch_safely
        from consent.propagation import after_pipeline_consent
        from segments.tasks import reevaluate_after_commit

        if withdrawing:
            # Withdrawals reach destinations now, not at the next sync (never raises; the sweeper backs it up).
            after_pipeline_consent(raw_event_ids=withdrawing)
        reevaluate_after_commit(profile_ids=profile_ids, event_types=sorted(event_types), trait_keys=sorted(trait_keys))
        # Triggers right after membership changed: the shortest path from event to message.
        after_batch_safely(raw_event_ids=raw_event_ids, profile_ids=profile_ids, since=since)

    transaction.on_commit(reevaluate)


def _deltas(planned, vault_entries: dict) -> dict[int, _ProfileDelta]:
    """Per target profile state (keyed by id() until ids exist), what this batch adds. Personal
    trait values become tokens here; their cleartext goes to `vault_entries`."""
    deltas: dict[int, _ProfileDelta] = defaultdict(_ProfileDelta)
    for raw, _sequence, event, target, primary in planned:
        delta = deltas[id(target)]
        delta.seen(event.occurred_at)
        if event.revenue:
            delta.revenue += Decimal(str(event.revenue))
        priority = raw.source.priority
        for key, value in seal_traits(event.traits, vault_entries).items():
            entry = trait_rules.provenance(
                source_id=raw.source_id,
                priority=priority,
                observed_at=event.occurred_at,
                is_verified=key in event.verified_traits,
                raw_event_id=raw.pk,
            )
            delta.traits.append((key, value, entry, primary))
        for consent in event.consent:
            delta.consent.append((consent, event.occurred_at, raw))
    return deltas


EVENT_FIELDS = [
    "profile",
    "source",
    "raw_event",
    "sequence",
    "type",
    "name",
    "occurred_at",
    "received_at",
    "properties",
    "revenue",
    "currency",
    "identifier",
]
TRAIT_VALUE_FIELDS = ["profile", "key", "value", "source", "raw_event", "identifier", "observed_at", "is_verified"]
CONSENT_FIELDS = [
    "profile",
    "purpose",
    "is_granted",
    "source",
    "raw_event",
    "captured_at",
    "recorded_at",
    "scope",
    "evidence",
]


def _write_events(planned, now: datetime) -> int:
    events, consent_records = [], []
    for raw, sequence, event, target, primary in planned:
        profile_id = find(target).id
        if event.type is not None:
            revenue = Decimal(str(event.revenue)) if event.revenue is not None else None
            events.append(
                (
                    profile_id,
                    raw.source_id,
                    raw.pk,
                    sequence,
                    event.type,
                    event.name[:200],
                    event.occurred_at,
                    raw.received_at,
                    event.properties,
                    revenue,
                    (event.currency or "")[:3].upper(),
                    primary.id,
                )
            )
        for consent in event.consent:
            consent_records.append(
                (
                    profile_id,
                    consent.purpose,
                    consent.is_granted,
                    raw.source_id,
                    raw.pk,
                    event.occurred_at,
                    now,
                    consent.scope[:200],
                    consent.evidence,
                )
            )
    insert_rows(Event, EVENT_FIELDS, events)
    insert_rows(ConsentRecord, CONSENT_FIELDS, consent_records)
    return len(events)


def _write_profiles(resolver: BatchResolver, existing: dict[int, Profile], deltas, now: datetime) -> None:
    """Recompute the materialised fields of every surviving profile the batch touched."""
    # Deltas were keyed by the state an event targeted; fold them into the surviving root.
    by_root: dict[int, list[_ProfileDelta]] = defaultdict(list)
    states = {id(p): p for p in [*resolver.profiles.values(), *resolver.new_profiles]}
    for state_key, delta in deltas.items():
        by_root[id(find(states[state_key]))].append(delta)
    absorbed_by_root: dict[int, list[int]] = defaultdict(list)
    for merge in resolver.merges:
        absorbed_by_root[id(find(merge.survivor))].append(merge.absorbed.id)

    updated, trait_rows = [], []
    refreshes = _TraitRefreshes(trait_rows)
    for root in resolver.touched_roots():
        profile = existing[root.id]
        profile.status, profile.merged_into_id = Profile.ACTIVE, None
        profile_traits, provenance = dict(profile.traits or {}), dict(profile.trait_provenance or {})
        consent_summary = dict(profile.consent or {})
        revenue = profile.lifetime_revenue or Decimal("0")
        first_seen, last_seen = profile.first_seen_at, profile.last_seen_at
        for absorbed_id in absorbed_by_root.get(id(root), []):
            absorbed = existing.get(absorbed_id)
            if absorbed is None:
                continue
            profile_traits, provenance = trait_rules.combine_traits(
                profile_traits, provenance, absorbed.traits or {}, absorbed.trait_provenance or {}
            )
            consent_summary = trait_rules.combine_consent(consent_summary, absorbed.consent or {})
            revenue += absorbed.lifetime_revenue or Decimal("0")
            first_seen = _earliest(first_seen, absorbed.first_seen_at)
            last_seen = _latest(last_seen, absorbed.last_seen_at)
        for delta in by_root.get(id(root), []):
            for key, value, entry, identifier in delta.traits:
                entry["identifier_id"] = identifier.id  # known only once identifiers are written
                current = provenance.get(key)
                if trait_rules.refresh_if_repeated(profile_traits, provenance, key, value, entry):
                    # The same value from the same source and identifier again: no new row, but
                    # the row is dated by its latest sighting, so traits rebuilt from rows (after
                    # an unmerge) decide exactly as the materialised ones did.
                    if provenance[key] is not current:
                        refreshes.refresh(root.id, key, current["raw_event_id"], provenance[key])
                    continue
                trait_rules.apply_trait(profile_traits, provenance, key, value, entry)
                refreshes.added(root.id, key, entry["raw_event_id"], len(trait_rows))
                trait_rows.append(
                    (
                        root.id,
                        key,
                        value,
                        entry["source_id"],
                        entry["raw_event_id"],
                        identifier.id,
                        trait_rules.observed_at(entry),
                        entry["is_verified"],
                    )
                )
            for consent, captured_at, raw in delta.consent:
                trait_rules.apply_consent(
                    consent_summary,
                    consent.purpose,
                    is_granted=consent.is_granted,
                    captured_at=captured_at,
                    source_id=raw.source_id,
                )
            revenue += delta.revenue
            first_seen = _earliest(first_seen, delta.first_seen_at)
            last_seen = _latest(last_seen, delta.last_seen_at)
        profile.traits, profile.trait_provenance, profile.consent = profile_traits, provenance, consent_summary
        profile.lifetime_revenue = revenue
        profile.first_seen_at, profile.last_seen_at = first_seen, last_seen
        profile.merge_confidence = min(profile.merge_confidence, root.confidence)
        profile.lifecycle = trait_rules.lifecycle(
            is_known=resolver.is_known(root), lifetime_revenue=revenue, last_seen_at=last_seen, now=now
        )
        updated.append(
            (
                profile.pk,
                Profile.ACTIVE,
                None,
                profile_traits,
                provenance,
                consent_summary,
                revenue,
                first_seen,
                last_seen,
                profile.merge_confidence,
                profile.lifecycle,
                now,
            )
        )
    update_rows(Profile, PROFILE_FIELDS, updated)
    insert_rows(TraitValue, TRAIT_VALUE_FIELDS, trait_rows)
    refreshes.write()


class _TraitRefreshes:
    """Re-dates trait rows whose value was seen again: rows this batch inserts are changed before
    the insert, stored rows by one UPDATE per row found by (profile, key, raw event)."""

    def __init__(self, trait_rows: list):
        self.trait_rows = trait_rows
        self.rows: dict[tuple, tuple] = {}  # (profile, key, raw event of the sighting) -> the row
        self.stored: dict[tuple, tuple] = {}  # (profile, key, raw event stored) -> (observed, raw)

    def added(self, profile_id, key, raw_event_id, index) -> None:
        self.rows[(profile_id, key, raw_event_id)] = ("pending", index)

    def refresh(self, profile_id, key, raw_event_id, entry: dict) -> None:
        if raw_event_id is None:
            return
        row = self.rows.get((profile_id, key, raw_event_id), ("stored", raw_event_id))
        seen_at = trait_rules.observed_at(entry)
        if row[0] == "pending":
            values = list(self.trait_rows[row[1]])
            values[4], values[6] = entry["raw_event_id"], seen_at
            self.trait_rows[row[1]] = tuple(values)
        else:
            self.stored[(profile_id, key, row[1])] = (seen_at, entry["raw_event_id"])
        self.rows[(profile_id, key, entry["raw_event_id"])] = row

    def write(self) -> None:
        if not self.stored:
            return
        table = connection.ops.quote_name(TraitValue._meta.db_table)
        observed = TraitValue._meta.get_field("observed_at")
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {table} SET observed_at = %s, raw_event_id = %s "  # noqa: S608
                "WHERE profile_id = %s AND key = %s AND raw_event_id = %s",
                [
                    (observed.get_db_prep_save(seen_at, connection), new_raw, profile_id, key, raw_event_id)
                    for (profile_id, key, raw_event_id), (seen_at, new_raw) in self.stored.items()
                ],
            )


PROFILE_FIELDS = [
    "status",
    "merged_into",
    "traits",
    "trait_provenance",
    "consent",
    "lifetime_revenue",
    "first_seen_at",
    "last_seen_at",
    "merge_confidence",
    "lifecycle",
    "updated_at",
]


def _earliest(a, b):
    return b if a is None else a if b is None else min(a, b)


def _latest(a, b):
    return b if a is None else a if b is None else max(a, b)


def _write_drift(drift: Counter, now: datetime) -> None:
    for (source_id, event_type, name), count in sorted(drift.items()):
        updated = SchemaDrift.objects.filter(
            source_id=source_id, event_type=event_type, property_name=name[:200]
        ).update(occurrences=F("occurrences") + count, last_seen_at=now)
        if not updated:
            SchemaDrift.objects.create(
                source_id=source_id,
                event_type=event_type,
                property_name=name[:200],
                occurrences=count,
                first_seen_at=now,
                last_seen_at=now,
            )


def _drop_tombstoned(resolver: BatchResolver, accepted: list[_Accepted], statuses) -> list[_Accepted]:
    """Raw events naming an identifier a deletion request tombstoned create no profile, event or
    send: they become "dropped" with their payload blanked (counted per source by status). The
    sender had its 2xx when the event was stored. One tombstone lookup for the whole batch."""
    from consent.models import Tombstone

    if not Tombstone.objects.exists():
        return accepted  # the common case: no deletion request yet, no normalising twice
    keys = {
        id(event): [
            normalised
            for observed in event.identifiers
            if (normalised := resolver.normalise(Observed(observed.type, observed.value, observed.is_verified)))
        ]
        for item in accepted
        for event in item.events
    }
    tombstoned = resolver.load_tombstones([key for found in keys.values() for key in found])
    if not tombstoned:
        return accepted
    kept = []
    for item in accepted:
        if any((rule.id, value) in tombstoned for event in item.events for rule, value in keys[id(event)]):
            statuses[RawEvent.DROPPED].append((item.raw.pk, "dropped: names an identifier a deletion request erased"))
        else:
            kept.append(item)
    return kept


def _write_statuses(statuses: dict[str, list[tuple[int, str]]], now: datetime) -> None:
    processed = [raw_id for raw_id, _ in statuses.get(RawEvent.PROCESSED, [])]
    for start in range(0, len(processed), 900):
        RawEvent.objects.filter(id__in=processed[start : start + 900]).update(
            status=RawEvent.PROCESSED, error="", processed_at=now, attempts=F("attempts") + 1
        )
    for status in (RawEvent.QUARANTINED, RawEvent.FAILED):
        for raw_id, error in statuses.get(status, []):
            RawEvent.objects.filter(pk=raw_id).update(
                status=status, error=error[:2000], processed_at=now, attempts=F("attempts") + 1
            )
    # Dropped for a tombstone: the erased person's data is not kept, not even in the raw log.
    for raw_id, error in statuses.get(RawEvent.DROPPED, []):
        RawEvent.objects.filter(pk=raw_id).update(
            status=RawEvent.DROPPED, error=error, payload={}, headers={}, processed_at=now, attempts=F("attempts") + 1
        )

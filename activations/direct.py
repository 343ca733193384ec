"""Operations sent at once, outside sync runs: removing a person who withdrew consent, deleting a
person a deletion request names. They cannot wait for the next scheduled run.

They go through the same connectors and delivery (rate limit, 429, per-record answers), retry
transient failures a few times inline, and update `SyncState` so the next run agrees with what the
destination now holds.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from activations import domain
from activations.connectors import Outbound, connector_for
from activations.delivery import backoff_seconds, client_for, deliver
from activations.models import Sync, SyncRecord, SyncState, TriggerSend

logger = logging.getLogger(__name__)

INLINE_ATTEMPTS_SECONDS = 30.0  # give up retrying inline after this long; the caller records a failure


@dataclass
class DirectOutcome:
    sync: str
    destination: str
    profile_id: int
    operation: str
    ok: bool
    status_code: int | None = None
    message: str = ""
    applied_at: object = None
    attempts: int = 0
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "sync": self.sync,
            "destination": self.destination,
            "profile_id": self.profile_id,
            "operation": self.operation,
            "ok": self.ok,
            "status_code": self.status_code,
            "message": self.message[:300],
            "applied_at": self.applied_at.isoformat() if self.applied_at else None,
            "attempts": self.attempts,
        }


def send_direct(*, sync: Sync, operation: str, states: list[SyncState], reason: str) -> list[DirectOutcome]:
    """Send `operation` for these people of this sync now; returns one outcome per person."""
    destination = sync.destination
    connector = connector_for(destination)
    key_field = destination.idempotency_key
    outcomes: dict[int, DirectOutcome] = {
        state.pk: DirectOutcome(sync.slug, destination.slug, state.profile_id, operation, ok=False) for state in states
    }
    problems = connector.check_configuration()
    if problems:
        for outcome in outcomes.values():
            outcome.message = "destination misconfigured: " + "; ".join(problems)
        return list(outcomes.values())
    by_id = {state.pk: state for state in states}
    pending = [state.pk for state in states if state.key]
    for state in states:
        if not state.key:
            outcomes[state.pk].message = "no key stored for this person"
    started = time.monotonic()
    # Nobody else claims these people: the limit is how long the caller waits for its answer.
    claimed_until = timezone.now() + timedelta(seconds=INLINE_ATTEMPTS_SECONDS)
    attempt = 0
    with client_for(connector) as client:
        while pending and time.monotonic() - started < INLINE_ATTEMPTS_SECONDS:
            attempt += 1
            outbound = [
                Outbound(
                    id=state_id,
                    operation=operation,
                    key=by_id[state_id].key,
                    fields={key_field: by_id[state_id].key},
                    idempotency_key=f"{reason}-{sync.pk}-{by_id[state_id].profile_id}-{operation}",
                    audience=sync.slug,
                )
                for state_id in pending
            ]
            retry: list[int] = []
            try:
                requests = []
                for start in range(0, len(outbound), connector.batch_size):
                    requests += connector.prepare(operation, outbound[start : start + connector.batch_size])
            except domain.ContractViolation as error:
                for state_id in pending:
                    outcomes[state_id].message = f"refused before sending: {error}"
                break
            deferred = False
            for index, request in enumerate(requests):
                result = deliver(connector, client, request, claimed_until=claimed_until)
                if result.deferred:
                    # Paused (a 429) or queued longer than the caller waits: not sent; the caller retries later.
                    message = result.not_sent_reason
                    for unsent in requests[index:]:
                        for state_id in unsent.record_ids:
                            outcomes[state_id].message = message
                    deferred = True
                    break
                answers = {answer.id: answer for answer in result.results}
                for state_id in request.record_ids:
                    outcome = outcomes[state_id]
                    outcome.attempts = attempt
                    outcome.status_code = result.status_code
                    answer = answers.get(state_id)
                    if result.retry_after is not None or result.transient or (answer and answer.retry):
                        outcome.message = result.transient or (answer.message if answer else "429")
                        retry.append(state_id)
                    elif answer is not None:
                        outcome.ok, outcome.message = answer.ok, answer.message
                        outcome.applied_at = result.answered_at if answer.ok else None
            if deferred:
                break
            pending = retry
            if pending and attempt < destination.max_attempts:
                time.sleep(min(backoff_seconds(attempt), 5.0))
            elif pending:
                break
    _accept(by_id, outcomes, reason)
    return list(outcomes.values())


def _accept(states: dict[int, SyncState], outcomes: dict[int, DirectOutcome], reason: str) -> None:
    now = timezone.now()
    done = [state_id for state_id, outcome in outcomes.items() if outcome.ok]
    if done:
        SyncState.objects.filter(pk__in=done).update(fingerprint="", skip_reason=reason, accepted_at=now)


def _first_allowed(operations: set[str], preferred: tuple[str, ...]) -> str | None:
    return next((operation for operation in preferred if operation in operations), None)


def _syncs_holding(profile_ids: list[int], purpose: str | None = None):
    states = SyncState.objects.filter(profile_id__in=profile_ids).exclude(fingerprint="")
    if purpose is not None:
        states = states.filter(sync__destination__consent_purpose=purpose)
    syncs: dict[int, list[SyncState]] = {}
    # Destination order: a deletion step sends inside its transaction, where each send slot's row lock
    # on the destination is held until commit; taking them in one order keeps two steps from deadlocking.
    ordered = states.select_related("sync__destination").order_by("sync__destination_id", "sync_id", "profile_id")
    for state in ordered:
        syncs.setdefault(state.sync_id, []).append(state)
    return syncs


def forget_in_destinations(*, profile_ids: list[int], reason: str = domain.SKIP_TOMBSTONE) -> list[DirectOutcome]:
    """A deletion request's destination step: every destination that holds these people gets a
    delete-person (or, where only removal exists, a removal) now. Afterwards no copy of their keys
    or payloads stays in our own activation tables."""
    outcomes: list[DirectOutcome] = []
    for states in _syncs_holding(profile_ids).values():
        sync = states[0].sync
        operations = set(sync.destination.operations)
        operation = _first_allowed(operations, (domain.DELETE, domain.REMOVE))
        if operation is None:
            outcomes += [
                DirectOutcome(
                    sync.slug,
                    sync.destination.slug,
                    state.profile_id,
                    "none",
                    ok=False,
                    message="the destination's contract allows neither delete nor remove: handle it by hand",
                )
                for state in states
            ]
            continue
        outcomes += send_direct(sync=sync, operation=operation, states=states, reason=reason)
    purge_activation_copies(profile_ids)
    return outcomes


def purge_activation_copies(profile_ids: list[int]) -> int:
    """Blank what we kept of what was sent for these people: keys and payloads, the destinations'
    answers (they may echo the person), and the key and value fingerprints (unkeyed MD5s: a guess
    would confirm them). Returns the rows touched; safe to run twice."""
    from activations.models import SyncSnapshot

    touched = 0
    for start in range(0, len(profile_ids), 500):
        chunk = profile_ids[start : start + 500]
        with transaction.atomic():
            touched += SyncState.objects.filter(profile_id__in=chunk).update(
                key="", key_hash="", fingerprint="", skip_reason=domain.SKIP_TOMBSTONE
            )
            touched += SyncRecord.objects.filter(profile_id__in=chunk).update(
                key="", payload="", key_hash="", fingerprint="", response=""
            )
            touched += SyncSnapshot.objects.filter(profile_id__in=chunk).update(key_hash="", fingerprint="")
            touched += TriggerSend.objects.filter(profile_id__in=chunk).update(payload="", response="")
    return touched


def remove_for_withdrawal(*, profile_id: int, purpose: str) -> list[DirectOutcome]:
    """Consent for `purpose` was withdrawn: remove the person now from every synced audience whose
    destination needs that purpose (mirror and upsert syncs alike: the destination must stop using
    them). Destinations whose contract has no removal get a delete where allowed."""
    outcomes: list[DirectOutcome] = []
    for states in _syncs_holding([profile_id], purpose=purpose).values():
        sync = states[0].sync
        operations = set(sync.destination.operations)
        operation = _first_allowed(operations, (domain.REMOVE, domain.DELETE))
        if operation is None:
            outcomes.append(
                DirectOutcome(
                    sync.slug,
                    sync.destination.slug,
                    profile_id,
                    "none",
                    ok=False,
                    message="the destination's contract allows neither remove nor delete",
                )
            )
            continue
        outcomes += send_direct(sync=sync, operation=operation, states=states, reason=domain.SKIP_CONSENT)
    return outcomes

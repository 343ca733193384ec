"""Real-time triggers: a message on segment entry or exit, or on an event, within a second.

Firing writes a `TriggerSend` whose idempotency key names its cause (the membership row or the
event), unique per trigger, so one entry never sends twice however often it is seen. Delivery
checks, at send time: tombstone, consent, suppression, holdout, merge confidence, frequency cap
(per person and channel) and quiet hours (in the person's time zone, else the trigger's).

The processing worker fires and delivers right after its batch commits (`after_batch`); the
every-minute tick sweeps anything that missed that path and retries due sends.
"""

from __future__ import annotations

import json
import logging
import string
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from activations import domain
from activations.connectors import Outbound, connector_for
from activations.delivery import backoff_seconds, client_for, deliver
from activations.mapping import contract_plan, payloads_for
from activations.models import Trigger, TriggerSend
from consent.tombstones import tombstoned_profile_ids
from profiles.models import Event, Profile
from segments.membership import holdout_bucket
from segments.models import SegmentMembership

logger = logging.getLogger(__name__)

LOOKBACK = timedelta(hours=24)  # the sweep fires for segment entries and exits this recent
# Events: the sweep is a safety net for a lost after-commit hook, so a short window is enough (it
# reads every event of the type in it); and an event that happened longer ago than the maximum age
# never fires (a CSV backfill of last year's cancellations must not text anyone).
EVENT_SWEEP_LOOKBACK = timedelta(minutes=15)
LEASE = timedelta(seconds=60)
INLINE_BUDGET_SECONDS = 2.0  # the processing worker sends for this long after a batch; the queue does the rest
WHERE_OPS = frozenset({"eq", "neq", "gt", "gte", "lt", "lte", "in", "contains", "exists", "not_exists"})
TIMEZONE_TRAITS = ("timezone", "time_zone", "tz")


class TriggerInvalid(ValueError):
    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{field}: {' '.join(messages)}" for field, messages in errors.items()))
        self.errors = errors


# -- validation -------------------------------------------------------------------------------------


def template_fields(template: dict) -> set[str]:
    names = set()
    for text in template.values():
        for _literal, name, _spec, _conversion in string.Formatter().parse(str(text)):
            if name is not None:
                names.add(name)
    return names


def trigger_validate(trigger: Trigger) -> None:
    errors: dict[str, list[str]] = {}

    def problem(field, message):
        errors.setdefault(field, []).append(message)

    if trigger.kind in (Trigger.SEGMENT_ENTRY, Trigger.SEGMENT_EXIT):
        if trigger.segment_id is None:
            problem("segment", "a segment trigger needs its segment")
        elif trigger.segment.published_version_id is None:
            problem("segment", "the segment has no published version")
    elif trigger.kind == Trigger.EVENT:
        if not trigger.event_type:
            problem("event_type", "an event trigger needs its event type")
    else:
        problem("kind", f"unknown kind {trigger.kind!r}")
    if not isinstance(trigger.where, list):
        problem("where", "a list of property filters")
    else:
        for index, condition in enumerate(trigger.where):
            if not isinstance(condition, dict) or not isinstance(condition.get("property"), str):
                problem("where", f"filter {index + 1}: needs a property name")
            elif condition.get("op") not in WHERE_OPS:
                problem("where", f"filter {index + 1}: op must be one of {', '.join(sorted(WHERE_OPS))}")
    destination = trigger.destination
    if domain.MESSAGE not in (destination.operations or []):
        problem("destination", f"{destination.name}'s contract does not allow messages")
    if not isinstance(trigger.template, dict) or not trigger.template:
        problem("template", "an object of message fields")
    else:
        connector = connector_for(destination)
        missing = [name for name in connector.message_fields if name not in trigger.template]
        if missing:
            problem("template", f"{connector.label} messages need {', '.join(missing)}")
        try:
            placeholders = template_fields(trigger.template)
        except ValueError as error:
            problem("template", f"not a valid template: {error}")
        else:
            allowed = {field.name for field in destination.contract}
            outside = sorted(placeholders - allowed)
            if outside:
                problem("template", f"fields outside {destination.name}'s contract: {', '.join(outside)}")
    if (trigger.quiet_start_hour is None) != (trigger.quiet_end_hour is None):
        problem("quiet_start_hour", "give both quiet hours or neither")
    for name in ("quiet_start_hour", "quiet_end_hour"):
        value = getattr(trigger, name)
        if value is not None and not 0 <= value <= 23:
            problem(name, "an hour from 0 to 23")
    try:
        ZoneInfo(trigger.default_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problem("default_timezone", f"unknown time zone {trigger.default_timezone!r}")
    if trigger.holdout_percent > 100:
        problem("holdout_percent", "0 to 100")
    if errors:
        raise TriggerInvalid(errors)


def trigger_save(*, trigger: Trigger | None = None, **values) -> Trigger:
    trigger = trigger or Trigger()
    for name, value in values.items():
        setattr(trigger, name, value)
    trigger_validate(trigger)
    trigger.save()
    return trigger


# -- firing -----------------------------------------------------------------------------------------


def event_matches(where: list, properties: dict) -> bool:
    for condition in where:
        name, op, expected = condition["property"], condition["op"], condition.get("value")
        present = name in properties
        value = properties.get(name)
        if op == "exists":
            ok = present and value is not None
        elif op == "not_exists":
            ok = not present or value is None
        elif not present:
            ok = False
        elif op == "eq":
            ok = value == expected or str(value) == str(expected)
        elif op == "neq":
            ok = not (value == expected or str(value) == str(expected))
        elif op == "in":
            ok = isinstance(expected, list) and (value in expected or str(value) in [str(e) for e in expected])
        elif op == "contains":
            ok = str(expected).lower() in str(value).lower() if not isinstance(value, list) else expected in value
        else:
            try:
                left, right = float(value), float(expected)
            except (TypeError, ValueError):
                ok = False
            else:
                ok = {"gt": left > right, "gte": left >= right, "lt": left < right, "lte": left <= right}[op]
        if not ok:
            return False
    return True


def _create_sends(rows: list[TriggerSend]) -> list[int]:
    """Insert the sends that do not exist yet; returns the ids of those created."""
    created = []
    for row in rows:
        try:
            with transaction.atomic():
                row.save()
        except IntegrityError:
            continue  # already fired for this cause
        created.append(row.pk)
    return created


def fire_for_memberships(
    *, since: datetime, profile_ids: list[int] | None = None, received_at: dict | None = None
) -> list[int]:
    now = timezone.now()
    rows = []
    for trigger in Trigger.objects.filter(
        is_active=True, kind__in=[Trigger.SEGMENT_ENTRY, Trigger.SEGMENT_EXIT]
    ).select_related("destination"):
        column = "entered_at" if trigger.kind == Trigger.SEGMENT_ENTRY else "exited_at"
        start = max(since, trigger.created_at)
        memberships = SegmentMembership.objects.filter(segment_id=trigger.segment_id, **{f"{column}__gte": start})
        if profile_ids is not None:
            memberships = memberships.filter(profile_id__in=profile_ids)
        memberships = memberships.exclude(
            Exists(TriggerSend.objects.filter(trigger=trigger, membership_id=OuterRef("id")))
        )
        channel = connector_for(trigger.destination).channel
        for membership_id, profile_id, at in memberships.values_list("id", "profile_id", column):
            rows.append(
                TriggerSend(
                    trigger=trigger,
                    profile_id=profile_id,
                    channel=channel,
                    idempotency_key=f"{trigger.kind}:{membership_id}",
                    membership_id=membership_id,
                    source_received_at=(received_at or {}).get(profile_id) or at,
                    created_at=now,
                )
            )
    return _create_sends(rows)


def fire_for_events(*, event_ids: list[int] | None = None, since: datetime | None = None) -> list[int]:
    now = timezone.now()
    oldest = now - timedelta(hours=settings.TRIGGER_MAX_EVENT_AGE_HOURS)
    rows = []
    for trigger in Trigger.objects.filter(is_active=True, kind=Trigger.EVENT).select_related("destination"):
        events = Event.objects.filter(type=trigger.event_type, occurred_at__gte=oldest)
        if event_ids is not None:
            events = events.filter(id__in=event_ids)
        else:
            events = events.filter(occurred_at__gte=since or now - EVENT_SWEEP_LOOKBACK)
        events = events.filter(received_at__gte=trigger.created_at).exclude(
            Exists(TriggerSend.objects.filter(trigger=trigger, event_id=OuterRef("id")))
        )
        channel = connector_for(trigger.destination).channel
        for event in events.only("id", "profile_id", "properties", "received_at").iterator(chunk_size=500):
            if not event_matches(trigger.where, event.properties or {}):
                continue
            rows.append(
                TriggerSend(
                    trigger=trigger,
                    profile_id=event.profile_id,
                    channel=channel,
                    idempotency_key=f"event:{event.pk}",
                    event_id=event.pk,
                    source_received_at=event.received_at,
                    created_at=now,
                )
            )
    return _create_sends(rows)


def after_batch(*, raw_event_ids: list[int], profile_ids: list[int], since: datetime) -> int:
    """Called by the processing worker once a batch has committed and segments were re-evaluated."""
    if not Trigger.objects.filter(is_active=True).exists():
        return 0
    events = list(Event.objects.filter(raw_event_id__in=raw_event_ids).values_list("id", "profile_id", "received_at"))
    received_at: dict[int, datetime] = {}
    for _event_id, profile_id, at in events:
        received_at[profile_id] = min(at, received_at.get(profile_id, at))
    created = fire_for_memberships(since=since, profile_ids=profile_ids, received_at=received_at)
    created += fire_for_events(event_ids=[event_id for event_id, _pid, _at in events])
    return deliver_sends(created, budget_seconds=INLINE_BUDGET_SECONDS)


def triggers_sweep(now: datetime | None = None) -> int:
    """The safety net: fire for recent causes nothing fired for yet, then deliver what is due."""
    now = now or timezone.now()
    created = fire_for_memberships(since=now - LOOKBACK) + fire_for_events(since=now - EVENT_SWEEP_LOOKBACK)
    return len(created)


def trigger_sends_retry_due(now: datetime | None = None) -> int:
    now = now or timezone.now()
    due = TriggerSend.objects.filter(
        Q(status=TriggerSend.PENDING, next_attempt_at__isnull=True)
        | Q(status=TriggerSend.PENDING, next_attempt_at__lte=now)
        | Q(status=TriggerSend.SENDING, claimed_until__lt=now)
    ).values_list("id", flat=True)
    return deliver_sends(list(due[:5000]))


# -- delivering -------------------------------------------------------------------------------------


def deliver_sends(send_ids: list[int], *, budget_seconds: float | None = None) -> int:
    """Check and send each; returns how many the destination accepted. With a budget, sends left
    when it runs out go to the queue (a slow or rate-limited destination must not hold up the
    processing worker)."""
    delivered = 0
    clients: dict[int, tuple] = {}
    deadline = time.monotonic() + budget_seconds if budget_seconds is not None else None
    try:
        for index, send_id in enumerate(send_ids):
            if deadline is not None and time.monotonic() > deadline:
                enqueue_delivery(send_ids[index:])
                break
            send = _claim(send_id)
            if send is None:
                continue
            trigger = send.trigger
            if trigger.destination_id not in clients:
                connector = connector_for(trigger.destination)
                clients[trigger.destination_id] = (connector, client_for(connector))
            remaining = deadline - time.monotonic() if deadline is not None else None
            delivered += _deliver(send, *clients[trigger.destination_id], wait_budget=remaining)
    finally:
        for _connector, client in clients.values():
            client.close()
    return delivered


def enqueue_delivery(send_ids: list[int]) -> None:
    from django_q.tasks import async_task

    async_task("activations.tasks.trigger_sends_deliver_task", list(send_ids), q_options={"task_name": "trigger_sends"})


def _claim(send_id: int) -> TriggerSend | None:
    now = timezone.now()
    taken = (
        TriggerSend.objects.filter(pk=send_id)
        .filter(
            Q(status=TriggerSend.PENDING, next_attempt_at__isnull=True)
            | Q(status=TriggerSend.PENDING, next_attempt_at__lte=now)
            | Q(status=TriggerSend.SENDING, claimed_until__lt=now)
        )
        .update(status=TriggerSend.SENDING, claimed_until=now + LEASE)
    )
    if not taken:
        return None
    return TriggerSend.objects.select_related("trigger__destination", "trigger__segment").get(pk=send_id)


def _skip(send: TriggerSend, reason: str, detail: str = "") -> int:
    TriggerSend.objects.filter(pk=send.pk).update(
        status=TriggerSend.SKIPPED, skip_reason=reason, error=detail[:2000], claimed_until=None
    )
    return 0


def _hold_reason(send: TriggerSend, profile: Profile) -> str | None:
    trigger, destination = send.trigger, send.trigger.destination
    if profile.status == Profile.DELETED or send.profile_id in tombstoned_profile_ids([send.profile_id]):
        return domain.SKIP_TOMBSTONE
    purpose = destination.consent_purpose
    if purpose and (profile.consent or {}).get(purpose, {}).get("is_granted") is not True:
        return domain.SKIP_CONSENT
    suppressed = SegmentMembership.objects.filter(
        profile_id=profile.pk, exited_at__isnull=True, segment__is_suppression=True
    ).exclude(segment_id=trigger.segment_id)
    if suppressed.exists():
        return domain.SKIP_SUPPRESSION
    if send.membership_id is not None:
        if SegmentMembership.objects.filter(pk=send.membership_id, is_holdout=True).exists():
            return domain.SKIP_HOLDOUT
    elif (
        trigger.holdout_percent
        and holdout_bucket(profile_id=profile.pk, segment_id=-trigger.pk) < trigger.holdout_percent
    ):
        return domain.SKIP_HOLDOUT
    if profile.merge_confidence < trigger.min_merge_confidence:
        return domain.SKIP_LOW_CONFIDENCE
    return None


def profile_timezone(profile: Profile, default: str) -> ZoneInfo:
    for key in TIMEZONE_TRAITS:
        name = (profile.traits or {}).get(key)
        if isinstance(name, str):
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo(default)


def quiet_until(trigger: Trigger, profile: Profile, now: datetime) -> datetime | None:
    """When quiet hours are on for this person now, the moment they end; otherwise None."""
    if trigger.quiet_start_hour is None or trigger.quiet_end_hour is None:
        return None
    local = now.astimezone(profile_timezone(profile, trigger.default_timezone))
    start, end, hour = trigger.quiet_start_hour, trigger.quiet_end_hour, local.hour
    quiet = (start <= hour < end) if start < end else (hour >= start or hour < end)
    if not quiet:
        return None
    until = local.replace(hour=end, minute=0, second=0, microsecond=0)
    if until <= local:
        until += timedelta(days=1)
    return until.astimezone(UTC)


def _capped(send: TriggerSend, now: datetime) -> bool:
    trigger = send.trigger
    if not trigger.cap_window_hours:
        return False
    # Sent in the window, or passed its checks and in flight now (its payload is written).
    recent = (
        TriggerSend.objects.filter(profile_id=send.profile_id, channel=send.channel)
        .filter(
            Q(status=TriggerSend.SENT, sent_at__gte=now - timedelta(hours=trigger.cap_window_hours))
            | (Q(status=TriggerSend.SENDING) & ~Q(payload=""))
        )
        .exclude(pk=send.pk)
        .count()
    )
    return recent >= trigger.cap_count


def _deliver(send: TriggerSend, connector, client, *, wait_budget: float | None = None) -> int:
    trigger, destination = send.trigger, send.trigger.destination
    now = timezone.now()
    with transaction.atomic():
        # One person's sends are checked one at a time, so two cannot both pass the cap.
        profile = Profile.objects.select_for_update().filter(pk=send.profile_id).first()
        if profile is None:
            return _skip(send, domain.SKIP_TOMBSTONE, "the profile no longer exists")
        if profile.status == Profile.MERGED and profile.merged_into_id:
            profile = Profile.objects.get(pk=profile.merged_into_id)
        reason = _hold_reason(send, profile)
        if reason:
            return _skip(send, reason)
        later = quiet_until(trigger, profile, now)
        if later is not None:
            TriggerSend.objects.filter(pk=send.pk).update(
                status=TriggerSend.PENDING, next_attempt_at=later, claimed_until=None, error="quiet hours"
            )
            return 0
        if _capped(send, now):
            return _skip(send, domain.SKIP_FREQUENCY_CAP)
        plan = contract_plan(destination)
        values = payloads_for(plan, [profile.pk], hashed=destination.pii_mode == domain.HASHED).get(profile.pk, {})
        try:
            fields = render(trigger.template, values)
        except KeyError as error:
            return _skip(send, domain.SKIP_MISSING_FIELD, f"no value for {error.args[0]}")
        TriggerSend.objects.filter(pk=send.pk).update(
            payload=json.dumps(fields, separators=(",", ":"), default=str),
            attempts=send.attempts + 1,
            claimed_until=now + LEASE,
        )
        send.attempts += 1
    outbound = Outbound(
        id=send.pk,
        operation=domain.MESSAGE,
        key=f"{trigger.slug}:{profile.pk}",
        fields=fields,
        idempotency_key=f"trigger-{trigger.pk}-{send.idempotency_key}",
        audience=trigger.slug,
    )
    try:
        [request] = connector.prepare(domain.MESSAGE, [outbound])
    except domain.ContractViolation as error:
        TriggerSend.objects.filter(pk=send.pk).update(
            status=TriggerSend.FAILED, error=f"refused before sending: {error}"
        )
        return 0
    outcome = deliver(connector, client, request, claimed_until=now + LEASE, wait_budget=wait_budget)
    return _record(send, outcome)


def _record(send: TriggerSend, outcome) -> int:
    now = timezone.now()
    update = {"claimed_until": None}
    if not outcome.deferred:  # nothing answered: the last answer's status stays
        update["status_code"] = outcome.status_code
    result = outcome.results[0] if outcome.results else None
    if outcome.deferred:
        update.update(
            status=TriggerSend.PENDING,
            attempts=max(send.attempts - 1, 0),
            next_attempt_at=now + timedelta(seconds=outcome.retry_after),
            error=outcome.not_sent_reason,
        )
    elif outcome.retry_after is not None:
        update.update(
            status=TriggerSend.PENDING,
            attempts=max(send.attempts - 1, 0),
            next_attempt_at=now + timedelta(seconds=outcome.retry_after),
            error=f"429: waiting {outcome.retry_after:g} s",
        )
    elif outcome.transient or (result and not result.ok and result.retry):
        reason = outcome.transient or result.message
        if send.attempts >= send.trigger.destination.max_attempts:
            update.update(status=TriggerSend.FAILED, error=f"gave up after {send.attempts} attempts: {reason}"[:2000])
        else:
            update.update(
                status=TriggerSend.PENDING,
                next_attempt_at=now + timedelta(seconds=backoff_seconds(send.attempts)),
                error=f"attempt {send.attempts} failed, retrying: {reason}"[:2000],
            )
    elif result and result.ok:
        answered = outcome.answered_at or now
        latency = (answered - send.source_received_at).total_seconds() * 1000 if send.source_received_at else None
        update.update(
            status=TriggerSend.SENT, sent_at=answered, latency_ms=latency, response=result.message[:2000], error=""
        )
    else:
        update.update(status=TriggerSend.FAILED, error=(result.message if result else "no answer")[:2000])
    TriggerSend.objects.filter(pk=send.pk).update(**update)
    return 1 if update.get("status") == TriggerSend.SENT else 0


def render(template: dict, values: dict) -> dict:
    """Fill "{field}" placeholders; a missing or empty value raises KeyError (the send is skipped)."""
    present = {name: value for name, value in values.items() if value not in (None, "")}
    return {name: str(text).format_map(present) for name, text in template.items()}


def trigger_latency(trigger: Trigger | None = None) -> dict:
    """p50/p95/max of event arrival to destination answer, over the latest 10,000 sent messages."""
    sends = TriggerSend.objects.filter(status=TriggerSend.SENT, latency_ms__isnull=False)
    if trigger is not None:
        sends = sends.filter(trigger=trigger)
    return latency_summary(sends.order_by("-sent_at").values_list("latency_ms", flat=True)[:10000])


def latency_summary(values_ms) -> dict:
    """Count, nearest-rank p50 and p95, and max of latencies in ms (rounded to 0.1)."""
    values = sorted(values_ms)
    if not values:
        return {"count": 0, "p50_ms": None, "p95_ms": None, "max_ms": None}

    def pick(q):
        return round(values[min(len(values) - 1, int(q * (len(values) - 1) + 0.5))], 1)

    return {"count": len(values), "p50_ms": pick(0.5), "p95_ms": pick(0.95), "max_ms": round(values[-1], 1)}


def after_batch_safely(**arguments) -> None:
    """The processing worker's hook: a failing destination must never fail ingestion; the tick
    sweeps what this missed."""
    try:
        after_batch(**arguments)
    except Exception:
        logger.exception("triggers_after_batch_failed; the tick will sweep")

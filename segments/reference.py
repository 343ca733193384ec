"""A slow, obviously-correct evaluator of segment definitions, in plain Python.

It exists to check the compiler (tests compare both on random definitions and data). It loads a profile's
whole timeline into memory, so use it on small test data only, never in production paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from consent.sealing import comparison_value, is_sealed_key
from segments.domain import condition_kind, is_number, parse_iso_instant

_MISSING = object()


@dataclass(frozen=True)
class EventData:
    type: str
    occurred_at: datetime
    properties: dict


@dataclass(frozen=True)
class ProfileData:
    id: int
    status: str
    traits: dict
    consent: dict
    merge_confidence: float
    identifier_types: frozenset[str]
    events: tuple[EventData, ...]
    computed: dict = field(default_factory=dict)


def load_profile_data(profile) -> ProfileData:
    """Everything a definition can read about one profile (small test data only: loads every event)."""
    from identity.models import Identifier

    return ProfileData(
        id=profile.pk,
        status=profile.status,
        traits=profile.traits or {},
        consent=profile.consent or {},
        merge_confidence=profile.merge_confidence,
        identifier_types=frozenset(
            Identifier.objects.filter(profile=profile).values_list("identifier_type__slug", flat=True)
        ),
        events=tuple(
            EventData(type=event.type, occurred_at=event.occurred_at, properties=event.properties or {})
            for event in profile.events.order_by("occurred_at", "id")
        ),
        computed=dict(profile.computed_trait_values.values_list("trait__key", "value")),
    )


def _kind(value) -> str:
    """The JSON type of a value, as the compiler sees it."""
    if value is _MISSING:
        return "missing"
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _same(stored, wanted) -> bool:
    """JSON equality of two scalars: same JSON type and same value (1 == 1.0, but true != 1, "1" != 1)."""
    return _kind(stored) == _kind(wanted) and stored == wanted


def _compare(left, op: str, right) -> bool:
    return {
        "eq": left == right,
        "gt": left > right,
        "gte": left >= right,
        "lt": left < right,
        "lte": left <= right,
    }[op]


def _value_matches(stored, op: str, value, now: datetime) -> bool:
    """One trait or property comparison; `stored` is _MISSING when the key is absent."""
    if op == "eq":
        return _same(stored, value)
    if op == "neq":
        return not _same(stored, value)
    if op == "in":
        return any(_same(stored, item) for item in value)
    if op == "exists":
        present = _kind(stored) not in ("missing", "null")
        return present if value is not False else not present
    if op in ("gt", "gte", "lt", "lte"):
        return _kind(stored) == "number" and _compare(stored, op, value)
    if op == "contains":
        if isinstance(stored, list) and any(_same(item, value) for item in stored):
            return True
        # ASCII case folding: the databases' case-insensitive LIKE agrees on ASCII letters only.
        return isinstance(stored, str) and isinstance(value, str) and _ascii_upper(value) in _ascii_upper(stored)
    if op in ("before", "after", "within_last_days"):
        moment = parse_iso_instant(stored)
        if moment is None:
            return False
        moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        if op == "before":
            return moment < parse_iso_instant(value)
        if op == "after":
            return moment > parse_iso_instant(value)
        return now - timedelta(days=value) <= moment <= now
    raise ValueError(f"Unknown operator {op!r}")


def _ascii_upper(text: str) -> str:
    return "".join(ch.upper() if "a" <= ch <= "z" else ch for ch in text)


def _event_matches(event: EventData, step: dict) -> bool:
    return event.type == step["event"] and all(
        _value_matches(event.properties.get(item["property"], _MISSING), item["op"], item.get("value"), now=None)
        for item in step.get("where") or ()
    )


def _in_window(event: EventData, now: datetime, days) -> bool:
    return days is None or now - timedelta(days=days) <= event.occurred_at <= now


def reference_matches(profile_data: ProfileData, definition: dict, *, now: datetime, resolve_segment) -> bool:
    """Whether an active profile matches the definition at `now`, evaluated in Python."""
    if profile_data.status != "active":
        return False
    return _matches(profile_data, definition, now, resolve_segment)


def _matches(data: ProfileData, condition: dict, now: datetime, resolve_segment) -> bool:
    kind = condition_kind(condition)
    if kind == "all":
        return all(_matches(data, item, now, resolve_segment) for item in condition["all"])
    if kind == "any":
        return any(_matches(data, item, now, resolve_segment) for item in condition["any"])
    if kind == "not":
        return not _matches(data, condition["not"], now, resolve_segment)
    if kind == "trait":
        key, op, value = condition["trait"], condition["op"], condition.get("value")
        if is_sealed_key(key) and op in ("eq", "neq", "in"):
            value = [comparison_value(key, item) for item in value] if op == "in" else comparison_value(key, value)
        stored = data.traits.get(key, _MISSING)
        return _value_matches(stored, op, value, now)
    if kind == "computed":
        stored = data.computed.get(condition["computed"], _MISSING)
        return _value_matches(stored, condition["op"], condition.get("value"), now)
    if kind == "event":
        events = [
            event
            for event in data.events
            if _event_matches(event, condition) and _in_window(event, now, condition.get("within_last_days"))
        ]
        if "count" in condition:
            return _compare(len(events), condition["count"]["op"], condition["count"]["value"])
        if "sum" in condition:
            total = condition["sum"]
            numbers = [event.properties.get(total["property"]) for event in events]
            summed = sum(float(number) for number in numbers if _kind(number) == "number")
            return _compare(summed, total["op"], float(total["value"]))
        return bool(events)
    if kind == "sequence":
        first, second = condition["sequence"]
        hours = timedelta(hours=condition["within_hours"])
        is_absent = condition.get("then", "present") == "absent"
        for event in data.events:
            if not _event_matches(event, first) or not _in_window(event, now, condition.get("within_last_days")):
                continue
            followed = any(
                _event_matches(later, second) and event.occurred_at < later.occurred_at <= event.occurred_at + hours
                for later in data.events
            )
            if is_absent and event.occurred_at <= now - hours and not followed:
                return True
            if not is_absent and followed:
                return True
        return False
    if kind == "consent":
        summary = data.consent.get(condition["consent"])
        stored = summary.get("is_granted", _MISSING) if isinstance(summary, dict) else _MISSING
        return _same(stored, condition.get("granted", True))
    if kind == "identifier":
        return condition["identifier"] in data.identifier_types
    if kind == "merge_confidence":
        threshold = condition["merge_confidence"]
        return _compare(data.merge_confidence, threshold["op"], threshold["value"])
    if kind == "segment":
        return _matches(data, resolve_segment(condition["segment"]), now, resolve_segment)
    raise ValueError(f"Not a valid condition: {condition!r}")

"""Segment definitions: the JSON grammar, its validation, hash, dependencies and diff. Pure, no ORM.

The grammar is documented (with examples) in the README's "Segment definitions" section. The compiler
(segments/compiler.py) and the reference evaluator (segments/reference.py) both assume a definition
that passed validate_definition().
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

CONDITION_KINDS = (
    "all",
    "any",
    "not",
    "trait",
    "event",
    "sequence",
    "consent",
    "identifier",
    "merge_confidence",
    "segment",
    "computed",
)
TRAIT_OPERATORS = (
    "eq",
    "neq",
    "in",
    "contains",
    "exists",
    "gt",
    "gte",
    "lt",
    "lte",
    "before",
    "after",
    "within_last_days",
)
# Personal traits are sealed (consent/sealing.py): only whole-value comparisons work on their tokens.
SEALED_TRAIT_OPERATORS = ("eq", "neq", "in", "exists")
PROPERTY_OPERATORS = ("eq", "neq", "in", "contains", "exists", "gt", "gte", "lt", "lte")
COUNT_OPERATORS = ("eq", "gt", "gte", "lt", "lte")
MERGE_CONFIDENCE_OPERATORS = ("gt", "gte", "lt", "lte")
NUMERIC_OPERATORS = ("gt", "gte", "lt", "lte")
SEQUENCE_THEN = ("present", "absent")
MAX_DEPTH = 20
MAX_KEY_LENGTH = 200

_ALLOWED_KEYS = {
    "all": {"all"},
    "any": {"any"},
    "not": {"not"},
    "trait": {"trait", "op", "value"},
    "event": {"event", "where", "within_last_days", "count", "sum"},
    "sequence": {"sequence", "within_hours", "then", "within_last_days"},
    "consent": {"consent", "granted"},
    "identifier": {"identifier"},
    "merge_confidence": {"merge_confidence"},
    "segment": {"segment"},
    "computed": {"computed", "op", "value"},
}

# ISO 8601 dates and datetimes the compiler can compare on both databases: a calendar date, optionally a
# time (minutes, seconds, up to 6 decimals) and a UTC offset. The day is checked against the month separately.
ISO_INSTANT_PATTERN = (
    r"\A[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?)?\Z"
)
_ISO_INSTANT = re.compile(ISO_INSTANT_PATTERN)


@dataclass(frozen=True)
class DefinitionError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@dataclass(frozen=True)
class Dependencies:
    event_types: frozenset[str]
    trait_keys: frozenset[str]
    identifier_types: frozenset[str]
    purposes: frozenset[str]
    segments: frozenset[str]
    uses_now: bool


def condition_kind(condition: Mapping) -> str | None:
    """The kind of a (validated) condition: the one grammar keyword among its keys."""
    kinds = [kind for kind in CONDITION_KINDS if kind in condition]
    return kinds[0] if len(kinds) == 1 else None


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value  # not NaN


def is_whole_number(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_scalar(value) -> bool:
    return isinstance(value, str | bool) or is_number(value)


def parse_iso_instant(value) -> datetime | None:
    """An ISO date or datetime string as an aware UTC datetime; dates mean midnight UTC, no offset means UTC.

    None when the string is not one the compiler can compare (see ISO_INSTANT_PATTERN) or not a real date.
    """
    if not isinstance(value, str) or not _ISO_INSTANT.match(value):
        return None
    text = value.replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        return None


def _listing(options) -> str:
    return ", ".join(options)


def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(word, sorted(options), n=1)
    return f" Did you mean '{close[0]}'?" if close else ""


def _join(path: str, part: str) -> str:
    if part.startswith("["):
        return f"{path}{part}"
    return f"{path}.{part}" if path else part


def _describe(value) -> str:
    return json.dumps(value, ensure_ascii=False)


class _Validator:
    def __init__(self, *, event_types, identifier_types, segments, slug, computed_traits=None):
        self.computed_traits = computed_traits
        self.event_types = event_types
        self.identifier_types = identifier_types
        self.segments = segments
        self.slug = slug
        self.errors: list[DefinitionError] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(DefinitionError(path, message))

    def condition(self, condition, path: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            self.error(path, f"Conditions are nested too deeply (at most {MAX_DEPTH} levels).")
            return
        if not isinstance(condition, dict):
            self.error(path, f"Expected a condition (a JSON object), got {_describe(condition)}.")
            return
        kinds = [kind for kind in CONDITION_KINDS if kind in condition]
        if len(kinds) != 1:
            found = f" It has {', '.join(kinds)}." if kinds else ""
            unknown = sorted(set(condition) - set(CONDITION_KINDS))
            hint = ""
            if unknown and not kinds:
                hint = f" Unknown field '{unknown[0]}'.{_suggest(unknown[0], CONDITION_KINDS)}"
            self.error(path, f"A condition needs exactly one of: {_listing(CONDITION_KINDS)}.{found}{hint}")
            return
        kind = kinds[0]
        for key in sorted(set(condition) - _ALLOWED_KEYS[kind]):
            self.error(
                _join(path, key),
                f"Unknown field '{key}' in a {kind} condition. Allowed: {_listing(sorted(_ALLOWED_KEYS[kind]))}.",
            )
        getattr(self, f"kind_{kind}")(condition, path, depth)

    def _group(self, condition, path, depth, kind):
        items = condition[kind]
        if not isinstance(items, list) or not items:
            self.error(_join(path, kind), f"'{kind}' needs a non-empty list of conditions.")
            return
        for index, item in enumerate(items):
            self.condition(item, _join(path, f"{kind}[{index}]"), depth + 1)

    def kind_all(self, condition, path, depth):
        self._group(condition, path, depth, "all")

    def kind_any(self, condition, path, depth):
        self._group(condition, path, depth, "any")

    def kind_not(self, condition, path, depth):
        self.condition(condition["not"], _join(path, "not"), depth + 1)

    def _key(self, key, path, what) -> bool:
        if not isinstance(key, str) or not key.strip():
            self.error(path, f"The {what} name must be a non-empty text.")
            return False
        if len(key) > MAX_KEY_LENGTH or '"' in key or "\\" in key or any(ord(ch) < 32 for ch in key):
            self.error(
                path, f"The {what} name '{key[:50]}' cannot be used: at most {MAX_KEY_LENGTH} characters, no quotes."
            )
            return False
        return True

    def _comparison(self, condition, path, operators, what):
        """Checks op and value of a trait or property comparison."""
        op = condition.get("op")
        if "op" not in condition:
            self.error(_join(path, "op"), f"Missing 'op'. Use one of: {_listing(operators)}.")
            return
        if not isinstance(op, str) or op not in operators:
            shown = op if isinstance(op, str) else _describe(op)
            suggestion = _suggest(op, operators) if isinstance(op, str) else ""
            self.error(_join(path, "op"), f"Unknown operator '{shown}'. Use one of: {_listing(operators)}.{suggestion}")
            return
        value_path = _join(path, "value")
        if op == "exists":
            if "value" in condition and not isinstance(condition["value"], bool):
                self.error(value_path, "'exists' takes true or false (or no value, meaning true).")
            return
        if "value" not in condition:
            self.error(value_path, f"Missing 'value' for '{op}'.")
            return
        value = condition["value"]
        if op in ("eq", "neq"):
            if not is_scalar(value):
                self.error(value_path, f"'{op}' compares with one text, number or true/false, not {_describe(value)}.")
        elif op == "in":
            if not isinstance(value, list) or not value:
                self.error(value_path, "'in' needs a non-empty list of values.")
            else:
                for index, item in enumerate(value):
                    if not is_scalar(item):
                        self.error(
                            _join(value_path, f"[{index}]"),
                            f"List values must be text, numbers or true/false, not {_describe(item)}.",
                        )
        elif op == "contains":
            if not is_scalar(value) or value == "":
                self.error(value_path, "'contains' needs a non-empty text (or a number or true/false for lists).")
        elif op in NUMERIC_OPERATORS:
            if not is_number(value):
                self.error(value_path, f"'{op}' compares numbers; the value must be a number, not {_describe(value)}.")
        elif op in ("before", "after"):
            if parse_iso_instant(value) is None:
                self.error(
                    value_path,
                    f"'{op}' needs a date like \"2026-03-31\" or a date and time like "
                    f'"2026-03-31T09:30:00+00:00", not {_describe(value)}.',
                )
        elif op == "within_last_days":
            self._positive_days(value, value_path, "within_last_days")

    def _positive_days(self, value, path, name):
        if not is_whole_number(value) or value <= 0:
            self.error(path, f"'{name}' must be a whole number of days above 0.")

    def _threshold(self, threshold, path, name, operators, *, whole):
        if not isinstance(threshold, dict):
            self.error(path, f'\'{name}\' must be an object like {{"op": "gte", "value": 3}}.')
            return
        allowed = {"op", "value"} | ({"property"} if name == "sum" else set())
        for key in sorted(set(threshold) - allowed):
            self.error(_join(path, key), f"Unknown field '{key}' in '{name}'. Allowed: {_listing(sorted(allowed))}.")
        op = threshold.get("op")
        if not isinstance(op, str) or op not in operators:
            shown = op if isinstance(op, str) else _describe(op)
            suggestion = _suggest(op, operators) if isinstance(op, str) else ""
            self.error(_join(path, "op"), f"Unknown operator '{shown}'. Use one of: {_listing(operators)}.{suggestion}")
        value = threshold.get("value")
        if "value" not in threshold:
            self.error(_join(path, "value"), f"Missing 'value' in '{name}'.")
        elif whole and (not is_whole_number(value) or value < 0):
            self.error(_join(path, "value"), f"'{name}' must be a whole number, 0 or more.")
        elif not whole and not is_number(value):
            self.error(_join(path, "value"), f"'{name}' value must be a number, not {_describe(value)}.")
        return threshold

    def kind_computed(self, condition, path, depth):
        key = condition["computed"]
        self._key(key, _join(path, "computed"), "computed trait")
        if self.computed_traits is not None and isinstance(key, str) and key not in self.computed_traits:
            self.error(
                _join(path, "computed"),
                f"Unknown computed trait '{key}'.{_suggest(key, self.computed_traits)}",
            )
        self._comparison(condition, path, TRAIT_OPERATORS, "computed trait")

    def kind_trait(self, condition, path, depth):
        from consent.sealing import is_sealed_key

        key, op = condition["trait"], condition.get("op")
        self._key(key, _join(path, "trait"), "trait")
        if isinstance(key, str) and is_sealed_key(key) and op in TRAIT_OPERATORS and op not in SEALED_TRAIT_OPERATORS:
            self.error(
                _join(path, "op"),
                f"The trait '{key[:50]}' is personal data, encrypted at rest: compare whole values with "
                f"{_listing(SEALED_TRAIT_OPERATORS)} (any letter case), not '{op}'.",
            )
            return
        self._comparison(condition, path, TRAIT_OPERATORS, "trait")

    def _event_type(self, event_type, path):
        if not isinstance(event_type, str) or not event_type:
            self.error(path, 'The event type must be a non-empty text, like "order.completed".')
            return
        if self.event_types is not None and event_type not in self.event_types:
            self.error(path, f"Unknown event type '{event_type}'.{_suggest(event_type, self.event_types)}")

    def _where(self, condition, path):
        if "where" not in condition:
            return
        where = condition["where"]
        where_path = _join(path, "where")
        if not isinstance(where, list):
            self.error(where_path, "'where' must be a list of property filters.")
            return
        for index, item in enumerate(where):
            item_path = _join(where_path, f"[{index}]")
            if not isinstance(item, dict):
                self.error(item_path, f"A property filter must be an object, not {_describe(item)}.")
                continue
            for key in sorted(set(item) - {"property", "op", "value"}):
                self.error(
                    _join(item_path, key), f"Unknown field '{key}' in a property filter. Allowed: op, property, value."
                )
            if "property" not in item:
                self.error(_join(item_path, "property"), "Missing 'property': which event property to filter on.")
            else:
                self._key(item["property"], _join(item_path, "property"), "property")
            self._comparison(item, item_path, PROPERTY_OPERATORS, "property")

    def kind_event(self, condition, path, depth):
        self._event_type(condition["event"], _join(path, "event"))
        self._where(condition, path)
        if "within_last_days" in condition:
            self._positive_days(condition["within_last_days"], _join(path, "within_last_days"), "within_last_days")
        if "count" in condition and "sum" in condition:
            self.error(path, "Use either 'count' or 'sum', not both.")
        if "count" in condition:
            self._threshold(condition["count"], _join(path, "count"), "count", COUNT_OPERATORS, whole=True)
        if "sum" in condition:
            total = condition["sum"]
            self._threshold(total, _join(path, "sum"), "sum", COUNT_OPERATORS, whole=False)
            if isinstance(total, dict):
                if "property" not in total:
                    self.error(_join(path, "sum.property"), "Missing 'property': which event property to add up.")
                else:
                    self._key(total["property"], _join(path, "sum.property"), "property")

    def kind_sequence(self, condition, path, depth):
        steps = condition["sequence"]
        steps_path = _join(path, "sequence")
        if not isinstance(steps, list) or len(steps) != 2:
            self.error(steps_path, "A sequence has exactly two steps: the first event, then the second.")
        else:
            for index, step in enumerate(steps):
                step_path = _join(steps_path, f"[{index}]")
                if not isinstance(step, dict):
                    self.error(
                        step_path,
                        f'A step must be an object like {{"event": "order.completed"}}, not {_describe(step)}.',
                    )
                    continue
                for key in sorted(set(step) - {"event", "where"}):
                    self.error(
                        _join(step_path, key), f"Unknown field '{key}' in a sequence step. Allowed: event, where."
                    )
                if "event" not in step:
                    self.error(_join(step_path, "event"), "Missing 'event': the event type of this step.")
                else:
                    self._event_type(step["event"], _join(step_path, "event"))
                self._where(step, step_path)
        hours = condition.get("within_hours")
        if "within_hours" not in condition:
            self.error(_join(path, "within_hours"), "Missing 'within_hours': how long after the first step to look.")
        elif not is_number(hours) or hours <= 0:
            self.error(_join(path, "within_hours"), "'within_hours' must be a number of hours above 0.")
        if "then" in condition and condition["then"] not in SEQUENCE_THEN:
            self.error(
                _join(path, "then"), f'\'then\' must be "present" or "absent", not {_describe(condition["then"])}.'
            )
        if "within_last_days" in condition:
            self._positive_days(condition["within_last_days"], _join(path, "within_last_days"), "within_last_days")

    def kind_consent(self, condition, path, depth):
        from consent.domain import PURPOSE_SLUGS  # pure module: the purposes vocabulary

        purpose = condition["consent"]
        if not isinstance(purpose, str) or purpose not in PURPOSE_SLUGS:
            shown = purpose if isinstance(purpose, str) else _describe(purpose)
            suggestion = _suggest(purpose, PURPOSE_SLUGS) if isinstance(purpose, str) else ""
            self.error(
                _join(path, "consent"),
                f"Unknown consent purpose '{shown}'. Use one of: {_listing(sorted(PURPOSE_SLUGS))}.{suggestion}",
            )
        if "granted" in condition and not isinstance(condition["granted"], bool):
            self.error(_join(path, "granted"), "'granted' must be true or false.")

    def kind_identifier(self, condition, path, depth):
        slug = condition["identifier"]
        if not isinstance(slug, str) or not slug:
            self.error(_join(path, "identifier"), 'The identifier type must be a non-empty text, like "email".')
        elif self.identifier_types is not None and slug not in self.identifier_types:
            self.error(
                _join(path, "identifier"), f"Unknown identifier type '{slug}'.{_suggest(slug, self.identifier_types)}"
            )

    def kind_merge_confidence(self, condition, path, depth):
        threshold = condition["merge_confidence"]
        self._threshold(
            threshold, _join(path, "merge_confidence"), "merge_confidence", MERGE_CONFIDENCE_OPERATORS, whole=False
        )
        value = threshold.get("value") if isinstance(threshold, dict) else None
        if is_number(value) and not 0 <= value <= 1:
            self.error(_join(path, "merge_confidence.value"), "'merge_confidence' is between 0 and 1.")

    def kind_segment(self, condition, path, depth):
        other = condition["segment"]
        segment_path = _join(path, "segment")
        if not isinstance(other, str) or not other:
            self.error(segment_path, 'The segment must be given by its slug, like "vip".')
            return
        if self.slug is not None and other == self.slug:
            self.error(segment_path, f"Segment '{self.slug}' cannot refer to itself.")
            return
        if self.segments is None:
            return
        if other not in self.segments:
            self.error(segment_path, f"Unknown segment '{other}'.{_suggest(other, self.segments)}")
            return
        chain = _reference_cycle(other, self.segments, start=self.slug)
        if chain:
            origin = self.slug if self.slug is not None and chain[-1] == self.slug else chain[-1]
            self.error(
                segment_path, f"Segment '{origin}' refers back to itself through {' → '.join(repr(s) for s in chain)}."
            )


def segment_references(definition) -> list[str]:
    """The slugs this definition refers to directly, in order of appearance."""
    found: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("segment"), str) and condition_kind(node) == "segment":
                found.append(node["segment"])
            for key in ("all", "any"):
                if isinstance(node.get(key), list):
                    for item in node[key]:
                        walk(item)
            if "not" in node:
                walk(node["not"])

    walk(definition)
    return found


def _reference_cycle(first: str, segments: Mapping[str, dict], *, start: str | None) -> list[str] | None:
    """The chain of slugs from `first` that comes back to `start` (or loops among other segments), else None."""
    stack: list[str] = []
    finished: set[str] = set()

    def visit(slug: str) -> list[str] | None:
        if slug == start or slug in stack:
            return [*stack, slug]
        if slug in finished or slug not in segments:
            return None
        stack.append(slug)
        for reference in segment_references(segments[slug]):
            chain = visit(reference)
            if chain:
                return chain
        stack.pop()
        finished.add(slug)
        return None

    return visit(first)


def validate_definition(
    definition,
    *,
    event_types: set[str] | None,
    identifier_types: set[str] | None,
    segments: Mapping[str, dict] | None,
    slug: str | None = None,
    computed_traits: set[str] | None = None,
) -> list[DefinitionError]:
    """Every problem in a definition, each with the path of the condition it is about.

    None for event_types, identifier_types or segments skips the checks against that vocabulary.
    `slug` is the segment being saved, so a reference back to it is reported as a cycle.
    """
    validator = _Validator(
        event_types=event_types,
        identifier_types=identifier_types,
        segments=segments,
        slug=slug,
        computed_traits=computed_traits,
    )
    validator.condition(definition, "", 0)
    return validator.errors


def canonical_json(definition) -> str:
    return json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def definition_hash(definition) -> str:
    return hashlib.sha256(canonical_json(definition).encode()).hexdigest()


def definition_diff(old, new, *, old_name: str = "before", new_name: str = "after") -> str:
    def pretty(definition):
        if definition is None:
            return []
        return json.dumps(definition, sort_keys=True, indent=2, ensure_ascii=False).splitlines(keepends=True)

    lines = difflib.unified_diff(pretty(old), pretty(new), fromfile=old_name, tofile=new_name)
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def walk_conditions(definition, visit: Callable[[dict], None], *, resolve_segment=None, seen=()) -> None:
    """Calls visit on every condition, following segment references when resolve_segment is given."""
    if not isinstance(definition, dict):
        return
    visit(definition)
    kind = condition_kind(definition)
    if kind in ("all", "any") and isinstance(definition[kind], list):
        for item in definition[kind]:
            walk_conditions(item, visit, resolve_segment=resolve_segment, seen=seen)
    elif kind == "not":
        walk_conditions(definition["not"], visit, resolve_segment=resolve_segment, seen=seen)
    elif kind == "segment" and resolve_segment is not None and definition["segment"] not in seen:
        other = resolve_segment(definition["segment"])
        if other is not None:
            walk_conditions(other, visit, resolve_segment=resolve_segment, seen=(*seen, definition["segment"]))


def definition_dependencies(definition, segments: Mapping[str, dict] | None = None) -> Dependencies:
    """What a definition reads, following references to other segments (through `segments`)."""
    event_types: set[str] = set()
    trait_keys: set[str] = set()
    identifier_types: set[str] = set()
    purposes: set[str] = set()
    referenced: set[str] = set()
    uses_now = False

    def visit(condition: dict) -> None:
        nonlocal uses_now
        kind = condition_kind(condition)
        if kind == "trait":
            trait_keys.add(condition["trait"])
            uses_now = uses_now or condition.get("op") == "within_last_days"
        elif kind == "event":
            event_types.add(condition["event"])
            uses_now = uses_now or "within_last_days" in condition
        elif kind == "sequence":
            event_types.update(step["event"] for step in condition["sequence"] if isinstance(step, dict))
            uses_now = uses_now or "within_last_days" in condition or condition.get("then") == "absent"
        elif kind == "consent":
            purposes.add(condition["consent"])
        elif kind == "identifier":
            identifier_types.add(condition["identifier"])
        elif kind == "segment":
            referenced.add(condition["segment"])

    walk_conditions(definition, visit, resolve_segment=(segments or {}).get)
    return Dependencies(
        event_types=frozenset(event_types),
        trait_keys=frozenset(trait_keys),
        identifier_types=frozenset(identifier_types),
        purposes=frozenset(purposes),
        segments=frozenset(referenced),
        uses_now=uses_now,
    )

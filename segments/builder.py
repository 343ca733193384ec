"""The segment builder's tree operations: pure functions on a definition, no ORM.

A condition is addressed by a path of keys and list positions joined by dots: "" is the whole
definition, "all.1" the second condition of the top group, "all.1.where.0" its first property filter,
"all.1.where.0.op" a field. Every operation returns a new definition and never changes its input;
a request that cannot apply raises BuilderError with a message for the person using the builder.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from datetime import date

from segments import domain

GROUPS = ("all", "any")
ADDABLE_KINDS = (
    ("trait", "Trait"),
    ("event", "Event"),
    ("sequence", "Sequence of two events"),
    ("consent", "Consent"),
    ("identifier", "Has an identifier"),
    ("merge_confidence", "Merge confidence"),
    ("segment", "In another segment"),
    ("all", "Group: all of"),
    ("any", "Group: any of"),
    ("not", "None of (not)"),
)
OPERATIONS = ("add", "remove", "set", "wrap", "group", "negate", "kind", "measure")
VALUE_OPERATORS_SCALAR = ("eq", "neq", "contains")
_NUMBER = re.compile(r"\A-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?\Z")
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_OPTIONAL_KEYS = {"within_last_days", "count", "sum", "where", "granted", "value", "then"}


class BuilderError(ValueError):
    """An operation that cannot apply; the message is shown next to the builder."""


@dataclass(frozen=True)
class Hints:
    """What the data suggests, so new conditions start from something that exists.

    trait_kinds: trait key -> value kinds seen ("string", "number", "boolean", "date", ...);
    property_kinds: (event type, property) -> declared type ("number", "string", ...).
    """

    trait_keys: tuple[str, ...] = ()
    event_types: tuple[str, ...] = ()
    purposes: tuple[str, ...] = ()
    identifier_types: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()
    trait_kinds: dict = field(default_factory=dict)
    property_kinds: dict = field(default_factory=dict)
    today: str = ""

    def first(self, name: str, fallback: str = "") -> str:
        values = getattr(self, name)
        return values[0] if values else fallback

    def properties(self, event_type: str) -> list[str]:
        return sorted(prop for (kind, prop) in self.property_kinds if kind == event_type)


# -- paths -------------------------------------------------------------------------------------


def parse_path(path: str) -> list[str | int]:
    """'all.1.where.0' -> ['all', 1, 'where', 0]; '' -> []."""
    if not path:
        return []
    return [int(part) if part.isdigit() else part for part in str(path).split(".")]


def join_path(*parts) -> str:
    return ".".join(str(part) for part in parts if part != "")


def path_from_error(path: str) -> str:
    """A validation error path ('all[1].where[0].op') in the builder's notation ('all.1.where.0.op')."""
    return re.sub(r"\[(\d+)\]", r".\1", path or "").lstrip(".")


def get(definition, path: str):
    node = definition
    for part in parse_path(path):
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            raise BuilderError(f"Nothing at {path!r}: the definition changed; reload the builder.") from None
    return node


def _split(path: str) -> tuple[str, str | int]:
    parts = parse_path(path)
    if not parts:
        raise BuilderError("This operation needs a condition, not the whole definition.")
    return join_path(*parts[:-1]), parts[-1]


def _replace(definition, path: str, value):
    """A copy of definition with the node at path replaced by value."""
    if not path:
        return copy.deepcopy(value)
    result = copy.deepcopy(definition)
    parent_path, last = _split(path)
    parent = get(result, parent_path)
    if isinstance(parent, list):
        if not isinstance(last, int) or last >= len(parent):
            raise BuilderError(f"Nothing at {path!r}: the definition changed; reload the builder.")
        parent[last] = copy.deepcopy(value)
    elif isinstance(parent, dict):
        parent[last] = copy.deepcopy(value)
    else:
        raise BuilderError(f"Nothing at {path!r}: the definition changed; reload the builder.")
    return result


# -- defaults ----------------------------------------------------------------------------------


def default_condition(kind: str, hints: Hints | None = None) -> dict:
    """A new condition of a kind, filled from what the data has, valid when the data allows."""
    hints = hints or Hints()
    if kind in GROUPS:
        return {kind: []}
    if kind == "not":
        return {"not": default_condition("trait", hints)}
    if kind == "trait":
        return {"trait": hints.first("trait_keys"), "op": "exists"}
    if kind == "event":
        return {"event": hints.first("event_types")}
    if kind == "sequence":
        first = hints.first("event_types")
        second = hints.event_types[1] if len(hints.event_types) > 1 else first
        return {"sequence": [{"event": first}, {"event": second}], "within_hours": 24, "then": "present"}
    if kind == "consent":
        return {"consent": hints.first("purposes", "email_marketing")}
    if kind == "identifier":
        return {"identifier": hints.first("identifier_types", "email")}
    if kind == "merge_confidence":
        return {"merge_confidence": {"op": "gte", "value": 0.9}}
    if kind == "segment":
        return {"segment": hints.first("segments")}
    if kind == "where":
        return {"property": "", "op": "exists"}
    raise BuilderError(f"Unknown kind of condition {kind!r}.")


# -- coercion from form text -------------------------------------------------------------------


def coerce_number(text, *, what: str = "value", whole: bool = False):
    if isinstance(text, bool):
        raise BuilderError(f"The {what} must be a number.")
    if isinstance(text, int | float):
        number = text
    else:
        cleaned = str(text).strip().replace(" ", "")
        if not _NUMBER.match(cleaned):
            raise BuilderError(f"The {what} must be a number, like 3 or 2.5 (got {str(text)!r}).")
        number = float(cleaned) if any(ch in cleaned for ch in ".eE") else int(cleaned)
    if whole:
        if isinstance(number, float):
            if not number.is_integer():
                raise BuilderError(f"The {what} must be a whole number (got {text!r}).")
            number = int(number)
    elif isinstance(number, float) and number.is_integer() and "." not in str(text) and "e" not in str(text).lower():
        number = int(number)
    return number


def coerce_boolean(text, *, what: str = "value") -> bool:
    if isinstance(text, bool):
        return text
    cleaned = str(text).strip().lower()
    if cleaned in _TRUE:
        return True
    if cleaned in _FALSE:
        return False
    raise BuilderError(f"The {what} must be true or false (got {str(text)!r}).")


def coerce_date(text) -> str:
    cleaned = str(text).strip()
    if domain.parse_iso_instant(cleaned) is None:
        raise BuilderError(
            f"Use a date like 2026-03-31 or a date and time like 2026-03-31T09:30:00+00:00 (got {cleaned!r})."
        )
    return cleaned


def coerce_scalar(text, kind: str | None = None):
    """One value typed in a form: as the kind says ("number", "integer", "boolean", "string", "date"), else
    guessed: true/false are booleans, plain numbers are numbers, "quoted" text stays text."""
    if not isinstance(text, str):
        return text
    if kind in ("number", "integer"):
        return coerce_number(text, whole=kind == "integer")
    if kind == "boolean":
        return coerce_boolean(text)
    if kind in ("string", "date", "datetime"):
        return text.strip()
    cleaned = text.strip()
    if len(cleaned) >= 2 and cleaned[0] == cleaned[-1] == '"':
        try:
            value = json.loads(cleaned)
        except json.JSONDecodeError:
            return cleaned[1:-1]
        return value if isinstance(value, str) else cleaned
    if cleaned.lower() in ("true", "false"):
        return cleaned.lower() == "true"
    if _NUMBER.match(cleaned) and len(cleaned) <= 18:
        return coerce_number(cleaned)
    return cleaned


def coerce_list(text, kind: str | None = None) -> list:
    """Comma-separated text as a list of values (an actual list is kept)."""
    if isinstance(text, list):
        return text
    items = [item.strip() for item in str(text).split(",")]
    values = [coerce_scalar(item, kind) for item in items if item]
    if not values:
        raise BuilderError("List at least one value, separated by commas.")
    return values


def coerce_comparison_value(text, op: str | None, kind: str | None = None):
    """The value of a trait or property comparison, shaped for its operator."""
    if op == "exists":
        return coerce_boolean(text if str(text).strip() else "true")
    if op == "in":
        return coerce_list(text, kind)
    if op in domain.NUMERIC_OPERATORS:
        return coerce_number(text)
    if op in ("before", "after"):
        return coerce_date(text)
    if op == "within_last_days":
        return _positive_whole(text, "number of days")
    return coerce_scalar(text, kind)


def _positive_whole(text, what: str) -> int:
    number = coerce_number(text, what=what, whole=True)
    if number <= 0:
        raise BuilderError(f"The {what} must be above 0.")
    return number


def _reshape_value(condition: dict, op: str, today: str) -> None:
    """After an operator change, keep the value when it still fits, else give one that does."""
    value = condition.get("value")
    has_value = "value" in condition
    condition.pop("value", None)
    if op == "exists":
        return
    if op == "in":
        if isinstance(value, list) and value:
            condition["value"] = value
        elif has_value and domain.is_scalar(value) and value != "":
            condition["value"] = [value]
        else:
            condition["value"] = []
    elif op in domain.NUMERIC_OPERATORS:
        if domain.is_number(value):
            condition["value"] = value
        else:
            try:
                condition["value"] = coerce_number(value if isinstance(value, str) else "0")
            except BuilderError:
                condition["value"] = 0
    elif op in ("before", "after"):
        condition["value"] = value if domain.parse_iso_instant(value) else (today or date.today().isoformat())
    elif op == "within_last_days":
        condition["value"] = value if domain.is_whole_number(value) and value > 0 else 30
    else:
        if isinstance(value, list):
            value = value[0] if value else ""
        condition["value"] = value if domain.is_scalar(value) else ""


# -- the operations ----------------------------------------------------------------------------


def add(definition, path: str, kind: str, hints: Hints | None = None):
    """Add a new condition of `kind` to the group at path (a non-group becomes `all` of it and the new
    one); kind "where" adds a property filter to the event or sequence step at path."""
    hints = hints or Hints()
    target = get(definition, path)
    if kind == "where":
        if not isinstance(target, dict) or "event" not in target:
            raise BuilderError("Property filters belong to an event condition or a sequence step.")
        new = {**copy.deepcopy(target)}
        where = list(new.get("where") or [])
        properties = hints.properties(new["event"])
        where.append({"property": properties[0] if properties else "", "op": "exists"})
        new["where"] = where
        return _replace(definition, path, new)
    condition = default_condition(kind, hints)
    if isinstance(target, dict) and domain.condition_kind(target) in GROUPS:
        group = domain.condition_kind(target)
        items = list(target[group]) if isinstance(target[group], list) else []
        return _replace(definition, path, {group: [*items, condition]})
    if isinstance(target, dict) and domain.condition_kind(target) is not None:
        return _replace(definition, path, {"all": [target, condition]})
    raise BuilderError("Conditions can only be added to a group or next to a condition.")


def remove(definition, path: str):
    """Remove the condition, filter or optional field at path. Removing the whole definition leaves an
    empty group; removing what a `not` negates removes the `not`."""
    if not path:
        return {"all": []}
    get(definition, path)
    parent_path, last = _split(path)
    parent = get(definition, parent_path)
    if isinstance(parent, list):
        grand_path, owner_key = _split(parent_path)
        if owner_key == "sequence":
            raise BuilderError("A sequence has exactly two steps; remove the whole sequence instead.")
        items = [item for index, item in enumerate(parent) if index != last]
        owner = copy.deepcopy(get(definition, grand_path))
        if owner_key == "where" and not items:
            owner.pop("where", None)
        else:
            owner[owner_key] = items
        return _replace(definition, grand_path, owner)
    if isinstance(parent, dict):
        if last == "not" or (domain.condition_kind(parent) == last and last not in _OPTIONAL_KEYS):
            return remove(definition, parent_path)
        if last not in _OPTIONAL_KEYS:
            raise BuilderError(f"'{last}' is required here; change it instead of removing it.")
        owner = copy.deepcopy(parent)
        owner.pop(last, None)
        return _replace(definition, parent_path, owner)
    raise BuilderError(f"Nothing to remove at {path!r}.")


def wrap(definition, path: str, group: str):
    if group not in GROUPS:
        raise BuilderError("Wrap in 'all' or 'any'.")
    return _replace(definition, path, {group: [get(definition, path)]})


def set_group(definition, path: str, group: str | None = None):
    """Switch a group between all and any (to `group` when given)."""
    node = get(definition, path)
    current = domain.condition_kind(node) if isinstance(node, dict) else None
    if current not in GROUPS:
        raise BuilderError("Only an 'all' or 'any' group can be switched.")
    target = group or ("any" if current == "all" else "all")
    if target not in GROUPS:
        raise BuilderError("A group is 'all' or 'any'.")
    return _replace(definition, path, {target: node[current]})


def negate(definition, path: str):
    """Wrap the condition at path in `not`; on a `not`, remove the negation."""
    node = get(definition, path)
    if isinstance(node, dict) and domain.condition_kind(node) == "not":
        return _replace(definition, path, node["not"])
    return _replace(definition, path, {"not": node})


def change_kind(definition, path: str, kind: str, hints: Hints | None = None):
    """Turn the condition at path into another kind: groups keep their conditions, `not` negates what was
    there, other kinds start from their defaults."""
    node = get(definition, path)
    current = domain.condition_kind(node) if isinstance(node, dict) else None
    if kind == current:
        return definition
    if kind in GROUPS and current in GROUPS:
        return set_group(definition, path, kind)
    if current in (*GROUPS, "not") and kind not in GROUPS:
        raise BuilderError("Change the conditions inside this group instead, or remove it.")
    if kind in GROUPS and current is not None:
        return _replace(definition, path, {kind: [node]})
    if kind == "not" and current is not None:
        return _replace(definition, path, {"not": node})
    return _replace(definition, path, default_condition(kind, hints))


def set_measure(definition, path: str, measure: str, hints: Hints | None = None):
    """An event condition's threshold: none, a count of events, or a sum of a property."""
    hints = hints or Hints()
    node = get(definition, path)
    if not isinstance(node, dict) or domain.condition_kind(node) != "event":
        raise BuilderError("Only an event condition counts or sums events.")
    new = {key: value for key, value in node.items() if key not in ("count", "sum")}
    if measure == "count":
        new["count"] = node.get("count") or {"op": "gte", "value": 1}
    elif measure == "sum":
        numeric = [
            p
            for p in hints.properties(node["event"])
            if hints.property_kinds.get((node["event"], p)) in ("number", "integer")
        ]
        new["sum"] = node.get("sum") or {"property": numeric[0] if numeric else "", "op": "gte", "value": 0}
    elif measure not in ("", "none"):
        raise BuilderError("Count events, sum a property, or neither.")
    return _replace(definition, path, new)


def _value_kind(definition, owner_path: str, owner: dict, hints: Hints) -> str | None:
    """The kind of value a trait or property filter compares, when the data says it clearly."""
    if "trait" in owner:
        kinds = set(hints.trait_kinds.get(owner["trait"], ())) - {"null", "object", "array"}
        return kinds.pop() if len(kinds) == 1 else None
    if "property" in owner:
        parent_path, _ = _split(owner_path)  # ".../where"
        event_owner = get(definition, _split(parent_path)[0]) if parent_path else None
        event_type = event_owner.get("event") if isinstance(event_owner, dict) else None
        kind = hints.property_kinds.get((event_type, owner["property"]))
        return kind if kind in ("number", "integer", "boolean", "string") else None
    return None


def set_field(definition, path: str, text, hints: Hints | None = None):
    """Set the field at path from form text, coerced to what that field holds. An empty optional number
    (a time window) removes the field."""
    hints = hints or Hints()
    owner_path, key = _split(path)
    owner = get(definition, owner_path)
    if not isinstance(owner, dict):
        raise BuilderError(f"Nothing to set at {path!r}.")
    new = copy.deepcopy(owner)
    text = text if text is not None else ""
    parent_key = parse_path(owner_path)[-1] if owner_path else None
    if key in ("trait", "event", "property", "consent", "identifier", "segment"):
        value = str(text).strip()
        if key == "trait" and not value:
            raise BuilderError("Choose a trait.")
        new[key] = value
    elif key == "op":
        op = str(text).strip()
        new["op"] = op
        if parent_key not in ("count", "sum", "merge_confidence"):
            _reshape_value(new, op, hints.today)
    elif key == "value":
        if parent_key == "count":
            new["value"] = coerce_number(text, what="count", whole=True)
        elif parent_key in ("sum", "merge_confidence"):
            new["value"] = coerce_number(text)
            if parent_key == "merge_confidence" and not 0 <= new["value"] <= 1:
                raise BuilderError("Merge confidence is between 0 and 1.")
        else:
            new["value"] = coerce_comparison_value(text, new.get("op"), _value_kind(definition, owner_path, new, hints))
            if new.get("op") == "exists" and new["value"] is True:
                new.pop("value")
    elif key in ("within_last_days", "within_hours"):
        if str(text).strip() == "" and key == "within_last_days":
            new.pop(key, None)
        elif key == "within_hours":
            hours = coerce_number(text, what="number of hours")
            if hours <= 0:
                raise BuilderError("The number of hours must be above 0.")
            new[key] = hours
        else:
            new[key] = _positive_whole(text, "number of days")
    elif key == "then":
        if text not in domain.SEQUENCE_THEN:
            raise BuilderError("The second event is either present or absent.")
        new["then"] = text
    elif key == "granted":
        if coerce_boolean(text, what="consent state"):
            new.pop("granted", None)
        else:
            new["granted"] = False
    else:
        raise BuilderError(f"'{key}' is not a field the builder can set.")
    return _replace(definition, owner_path, new)


def apply(definition, operation: dict, hints: Hints | None = None):
    """One builder operation: {"op": "add"|"remove"|"set"|"wrap"|"group"|"negate"|"kind"|"measure",
    "path": ..., plus "kind", "value" or "group" as the operation needs}."""
    name = operation.get("op")
    path = operation.get("path") or ""
    if name == "add":
        return add(definition, path, operation.get("kind") or "", hints)
    if name == "remove":
        return remove(definition, path)
    if name == "set":
        return set_field(definition, path, operation.get("value"), hints)
    if name == "wrap":
        return wrap(definition, path, operation.get("group") or "all")
    if name == "group":
        return set_group(definition, path, operation.get("group") or operation.get("value") or None)
    if name == "negate":
        return negate(definition, path)
    if name == "kind":
        return change_kind(definition, path, operation.get("kind") or operation.get("value") or "", hints)
    if name == "measure":
        return set_measure(definition, path, operation.get("value") or "", hints)
    raise BuilderError(f"Unknown builder operation {name!r}.")


# -- the outline the page renders --------------------------------------------------------------


@dataclass
class Node:
    """One condition (or property filter, or sequence step) as the page renders it."""

    path: str
    kind: str  # a condition kind, "where", "step" or "invalid"
    condition: object
    children: list[Node] = field(default_factory=list)
    filters: list[Node] = field(default_factory=list)
    steps: list[Node] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # Filled by the page from the catalog: the event's properties, and whether the named thing is known.
    properties: tuple = ()
    known: bool = True

    @property
    def prefix(self) -> str:
        """The path of this node's fields: prefix + "op"."""
        return f"{self.path}." if self.path else ""

    @property
    def id(self) -> str:
        return "b-" + (self.path.replace(".", "-") or "root")

    @property
    def value_text(self) -> str:
        """The comparison value as form text."""
        value = self.condition.get("value", "") if isinstance(self.condition, dict) else ""
        if isinstance(value, list):
            return ", ".join(_text(item) for item in value)
        return _text(value)

    @property
    def measure(self) -> str:
        condition = self.condition if isinstance(self.condition, dict) else {}
        return "count" if "count" in condition else "sum" if "sum" in condition else "none"

    @property
    def json(self) -> str:
        return json.dumps(self.condition, ensure_ascii=False)


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def outline(definition, path: str = "") -> Node:
    if not isinstance(definition, dict):
        return Node(path, "invalid", definition)
    kind = domain.condition_kind(definition)
    if kind is None:
        return Node(path, "invalid", definition)
    node = Node(path, kind, definition)
    if kind in GROUPS and isinstance(definition[kind], list):
        node.children = [outline(item, join_path(path, kind, index)) for index, item in enumerate(definition[kind])]
    elif kind == "not":
        node.children = [outline(definition["not"], join_path(path, "not"))]
    elif kind == "event":
        node.filters = _filters(definition, path)
    elif kind == "sequence" and isinstance(definition["sequence"], list):
        for index, step in enumerate(definition["sequence"]):
            step_path = join_path(path, "sequence", index)
            step_node = Node(step_path, "step" if isinstance(step, dict) else "invalid", step)
            if isinstance(step, dict):
                step_node.filters = _filters(step, step_path)
            node.steps.append(step_node)
    return node


def _filters(condition: dict, path: str) -> list[Node]:
    where = condition.get("where")
    if not isinstance(where, list):
        return []
    return [
        Node(join_path(path, "where", index), "where" if isinstance(item, dict) else "invalid", item)
        for index, item in enumerate(where)
    ]


def nodes(root: Node):
    """Every node of an outline, depth first."""
    yield root
    for child in (*root.children, *root.steps, *root.filters):
        yield from nodes(child)


def attach_errors(root: Node, errors) -> list[str]:
    """Put each validation error on the deepest node its path names; returns the messages that belong
    to no node (they are about the whole definition)."""
    by_path = {node.path: node for node in nodes(root)}
    unplaced = []
    for error in errors:
        parts = parse_path(path_from_error(error.path))
        for size in range(len(parts), -1, -1):
            node = by_path.get(join_path(*parts[:size]))
            if node is not None:
                field_name = ".".join(str(part) for part in parts[size:])
                node.errors.append(f"{field_name}: {error.message}" if field_name else error.message)
                break
        else:
            unplaced.append(str(error))
    return unplaced

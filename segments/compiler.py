"""One compiler: a segment definition becomes one filter over profiles, evaluated in one SQL statement.

The batch job, the preview, the API and real-time evaluation of one profile all call this module, so they
cannot drift. JSON values are compared by JSON type on both databases: the number 30 never equals the text
"30", true never equals 1, and a missing key or JSON null matches no comparison (so `neq` and `not` match it).
Every predicate compiles to SQL that is TRUE or FALSE, never NULL, so `not` is a plain SQL NOT.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db.models import (
    BooleanField,
    Count,
    Exists,
    Expression,
    F,
    FloatField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce

from consent.sealing import comparison_value, is_sealed_key
from identity.models import Identifier
from profiles.models import Event, Profile
from segments.domain import ISO_INSTANT_PATTERN, condition_kind, parse_iso_instant

ResolveSegment = Callable[[str], dict]

_SQL_OPERATORS = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


class SegmentCycleError(ValueError):
    pass


def _number_param(value) -> str:
    # Sent as text and cast to numeric on PostgreSQL, so comparisons with JSON numbers are exact.
    return str(Decimal(repr(value)) if isinstance(value, float) else value)


class JsonPredicate(Expression):
    # SQL here interpolates only compiled column SQL and fixed fragments; every value is a parameter.
    """A comparison on one key path of a JSON column, always TRUE or FALSE (never NULL).

    SQL is written per database rather than through Django's JSON lookups, so that JSON types are
    checked the same way on both: PostgreSQL reads jsonb_typeof(), SQLite json_type().
    """

    conditional = True
    output_field = BooleanField()

    def __init__(self, column, path: tuple[str, ...], op: str, value=None):
        super().__init__(output_field=BooleanField())
        self.column = column if hasattr(column, "resolve_expression") else F(column)
        self.path = tuple(path)
        self.op = op
        self.value = value

    def get_source_expressions(self):
        return [self.column]

    def set_source_expressions(self, expressions):
        (self.column,) = expressions

    def __repr__(self):
        return f"JsonPredicate({self.column!r}, {self.path!r}, {self.op!r}, {self.value!r})"

    # -- per database building blocks: (sql, params) pairs ------------------------------------------
    def _pg(self, column_sql, column_params):
        value_sql = f"({column_sql} #> %s::text[])"
        value_params = [*column_params, list(self.path)]
        kind = (
            f"COALESCE(CASE jsonb_typeof({value_sql}) WHEN 'boolean' THEN {value_sql} #>> '{{}}' "
            f"ELSE jsonb_typeof({value_sql}) END, 'missing')"
        )
        kind_params = value_params * 3
        text = f"({value_sql} #>> '{{}}')"
        return {
            "kind": (kind, kind_params),
            "text": (text, value_params),
            "number": (f"CAST({text} AS numeric)", value_params),
            "number_param": "CAST(%s AS numeric)",
            "regex": "~",
            "false": "FALSE",
            "instant": (f"CAST({text} AS timestamptz)", value_params),
            "array_has": (
                f"EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof({value_sql}) = 'array' "  # noqa: S608
                f"THEN {value_sql} ELSE '[]'::jsonb END) AS segment_element(item) "
                "WHERE segment_element.item = CAST(%s AS jsonb))",
                [*value_params, *value_params, json.dumps(self.value, default=str)],
            ),
        }

    def _sqlite(self, column_sql, column_params):
        from django.db.models.fields.json import compile_json_path

        path = compile_json_path(list(self.path))
        extracted = (f"json_extract({column_sql}, %s)", [*column_params, path])
        raw_kind = f"json_type({column_sql}, %s)"
        kind = (
            f"COALESCE(CASE {raw_kind} WHEN 'integer' THEN 'number' WHEN 'real' THEN 'number' "
            f"WHEN 'text' THEN 'string' ELSE {raw_kind} END, 'missing')"
        )
        value = self.value
        if isinstance(value, bool):
            element = ("segment_element.type = %s", ["true" if value else "false"])
        elif isinstance(value, str):
            element = ("segment_element.type = 'text' AND segment_element.value = %s", [value])
        else:
            element = ("segment_element.type IN ('integer', 'real') AND segment_element.value = %s", [value])
        return {
            "kind": (kind, [*column_params, path, *column_params, path]),
            "text": extracted,
            "number": (f"CAST({extracted[0]} AS REAL)", extracted[1]),
            "number_param": "%s",
            "regex": "REGEXP",
            "false": "0",
            # strftime normalises every accepted ISO form to UTC text with milliseconds, which sorts as time.
            "instant": (f"strftime(%s, {extracted[0]})", ["%Y-%m-%d %H:%M:%f", *extracted[1]]),
            "array_has": (
                f"({raw_kind} = 'array' AND EXISTS (SELECT 1 FROM json_each({column_sql}, %s) AS segment_element "  # noqa: S608
                f"WHERE {element[0]}))",
                [*column_params, path, *column_params, path, *element[1]],
            ),
        }

    def _instant_param(self, vendor: str, moment: datetime):
        if vendor == "postgresql":
            return moment
        moment = moment.astimezone(UTC)
        return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"

    def as_sql(self, compiler, connection):
        column_sql, column_params = compiler.compile(self.column)
        vendor = connection.vendor
        if vendor == "postgresql":
            parts = self._pg(column_sql, column_params)
        elif vendor == "sqlite":
            parts = self._sqlite(column_sql, column_params)
        else:  # pragma: no cover - the project runs on PostgreSQL and SQLite only
            raise NotImplementedError(f"Segments do not compile for {vendor}")
        kind_sql, kind_params = parts["kind"]
        false = parts["false"]
        op, value = self.op, self.value

        def equals(item):
            if isinstance(item, bool):
                return f"({kind_sql} = %s)", [*kind_params, "true" if item else "false"]
            if isinstance(item, str):
                text_sql, text_params = parts["text"]
                return f"({kind_sql} = 'string' AND {text_sql} = %s)", [*kind_params, *text_params, item]
            return compare_number("=", item)

        def compare_number(sql_op, number):
            number_sql, number_params = parts["number"]
            return (
                f"(CASE WHEN {kind_sql} = 'number' "
                f"THEN {number_sql} {sql_op} {parts['number_param']} ELSE {false} END)",
                [*kind_params, *number_params, _number_param(number) if vendor == "postgresql" else number],
            )

        if op == "eq":
            return equals(value)
        if op == "neq":
            sql, params = equals(value)
            return f"(NOT {sql})", params
        if op == "in":
            pieces = [equals(item) for item in value]
            return "(" + " OR ".join(sql for sql, _ in pieces) + ")", [p for _, params in pieces for p in params]
        if op == "exists":
            sql = f"({kind_sql} NOT IN ('missing', 'null'))"
            return (sql if value is not False else f"(NOT {sql})"), kind_params
        if op in ("gt", "gte", "lt", "lte"):
            return compare_number(_SQL_OPERATORS[op], value)
        if op == "contains":
            array_sql, array_params = parts["array_has"]
            if not isinstance(value, str):
                return f"({array_sql})", array_params
            text_sql, text_params = parts["text"]
            escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            return (
                f"(({kind_sql} = 'string' AND UPPER({text_sql}) LIKE UPPER(%s) ESCAPE '\\') OR {array_sql})",
                [*kind_params, *text_params, f"%{escaped}%", *array_params],
            )
        if op in ("before", "after", "within_last_days"):
            if op == "within_last_days":
                now = self.value["now"]
                comparisons = [(">=", now - timedelta(days=self.value["days"])), ("<=", now)]
            else:
                moment = parse_iso_instant(value)
                comparisons = [("<" if op == "before" else ">", moment)]
            return self._instant_sql(vendor, parts, comparisons)
        raise ValueError(f"Unknown operator {op!r}")

    def _instant_sql(self, vendor, parts, comparisons):
        kind_sql, kind_params = parts["kind"]
        text_sql, text_params = parts["text"]
        instant_sql, instant_params = parts["instant"]
        false = parts["false"]

        def piece(start, length):
            return f"CAST(SUBSTR({text_sql}, {start}, {length}) AS INTEGER)", text_params

        year, year_params = piece(1, 4)
        month, month_params = piece(6, 2)
        day, day_params = piece(9, 2)
        # Whether the day exists in that month (the pattern only bounds it by 31); integer division, no modulo,
        # so the same SQL runs on both databases.
        leap = f"(({year} / 4) * 4 = {year} AND (({year} / 100) * 100 <> {year} OR ({year} / 400) * 400 = {year}))"
        leap_params = year_params * 6
        valid_day = (
            f"({year} >= 1 AND {day} <= CASE {month} WHEN 2 THEN CASE WHEN {leap} THEN 29 ELSE 28 END "
            f"WHEN 4 THEN 30 WHEN 6 THEN 30 WHEN 9 THEN 30 WHEN 11 THEN 30 ELSE 31 END)"
        )
        valid_params = [*year_params, *day_params, *month_params, *leap_params]
        tests = " AND ".join(f"{instant_sql} {sql_op} %s" for sql_op, _ in comparisons)
        test_params = []
        for _, moment in comparisons:
            test_params += [*instant_params, self._instant_param(vendor, moment)]
        sql = (
            f"(CASE WHEN {kind_sql} = 'string' AND {text_sql} {parts['regex']} %s "
            f"THEN (CASE WHEN {valid_day} THEN ({tests}) ELSE {false} END) ELSE {false} END)"
        )
        return sql, [*kind_params, *text_params, ISO_INSTANT_PATTERN, *valid_params, *test_params]


def _json_condition(column: str, path: tuple[str, ...], op: str, value, now: datetime | None) -> Q:
    if op == "within_last_days":
        value = {"days": value, "now": now}
    return Q(JsonPredicate(column, path, op, value))


def _property_filters(where) -> Q:
    q = Q()
    for item in where or ():
        q &= _json_condition("properties", (item["property"],), item["op"], item.get("value"), None)
    return q


def _window(now: datetime, days: int | None) -> Q:
    if days is None:
        return Q()
    return Q(occurred_at__gte=now - timedelta(days=days), occurred_at__lte=now)


def _compare(expression, lookup: str, value) -> Q:
    from django.db.models import lookups

    classes = {
        "exact": lookups.Exact,
        "gt": lookups.GreaterThan,
        "gte": lookups.GreaterThanOrEqual,
        "lt": lookups.LessThan,
        "lte": lookups.LessThanOrEqual,
    }
    return Q(classes[lookup](expression, value))


class _Compiler:
    def __init__(self, *, now: datetime, resolve_segment: ResolveSegment):
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        self.now = now
        self.resolve_segment = resolve_segment

    def compile(self, condition: dict, stack: tuple[str, ...] = ()) -> Q:
        kind = condition_kind(condition)
        if kind is None:
            raise ValueError(f"Not a valid condition: {condition!r}")
        return getattr(self, f"kind_{kind}")(condition, stack)

    def kind_all(self, condition, stack):
        q = Q()
        for item in condition["all"]:
            q &= self.compile(item, stack)
        return q

    def kind_any(self, condition, stack):
        items = [self.compile(item, stack) for item in condition["any"]]
        q = items[0]
        for item in items[1:]:
            q |= item
        return q

    def kind_not(self, condition, stack):
        return ~self.compile(condition["not"], stack)

    def kind_computed(self, condition, stack):
        """A materialised computed trait: one row per profile (no row reads as missing)."""
        from segments.models import ComputedTraitValue

        op, value = condition["op"], condition.get("value")
        rows = ComputedTraitValue.objects.filter(profile_id=OuterRef("pk"), trait__key=condition["computed"])
        if op == "neq":  # true when missing, like a trait
            return ~Q(Exists(rows.filter(_json_condition("value", (), "eq", value, self.now))))
        if op == "exists" and value is False:
            return ~Q(Exists(rows.filter(_json_condition("value", (), "exists", True, self.now))))
        return Q(Exists(rows.filter(_json_condition("value", (), op, value, self.now))))

    def kind_trait(self, condition, stack):
        key, op, value = condition["trait"], condition["op"], condition.get("value")
        if is_sealed_key(key) and op in ("eq", "neq", "in"):
            # Personal traits hold tokens: compare with the token of the value.
            value = [comparison_value(key, item) for item in value] if op == "in" else comparison_value(key, value)
        return _json_condition("traits", (key,), op, value, self.now)

    def _events(self, step: dict, profile_ref) -> QuerySet:
        return Event.objects.filter(profile_id=profile_ref, type=step["event"]).filter(
            _property_filters(step.get("where"))
        )

    def kind_event(self, condition, stack):
        events = self._events(condition, OuterRef("pk")).filter(_window(self.now, condition.get("within_last_days")))
        if "count" in condition:
            counted = Subquery(events.order_by().values("profile_id").annotate(total=Count("id")).values("total")[:1])
            return _compare(Coalesce(counted, 0), _lookup(condition["count"]["op"]), condition["count"]["value"])
        if "sum" in condition:
            total = condition["sum"]
            number = JsonNumber("properties", (total["property"],))
            summed = Subquery(
                events.order_by().values("profile_id").annotate(total=Sum(number)).values("total")[:1],
                output_field=FloatField(),
            )
            return _compare(
                Coalesce(summed, Value(0.0), output_field=FloatField()), _lookup(total["op"]), float(total["value"])
            )
        return Q(Exists(events))

    def kind_sequence(self, condition, stack):
        first, second = condition["sequence"]
        hours = timedelta(hours=condition["within_hours"])
        firsts = self._events(first, OuterRef("pk")).filter(_window(self.now, condition.get("within_last_days")))
        followers = self._events(second, OuterRef("profile_id")).filter(
            occurred_at__gt=OuterRef("occurred_at"), occurred_at__lte=OuterRef("occurred_at") + hours
        )
        if condition.get("then", "present") == "absent":
            firsts = firsts.filter(occurred_at__lte=self.now - hours).filter(~Exists(followers))
        else:
            firsts = firsts.filter(Exists(followers))
        return Q(Exists(firsts))

    def kind_consent(self, condition, stack):
        granted = condition.get("granted", True)
        return Q(JsonPredicate("consent", (condition["consent"], "is_granted"), "eq", granted))

    def kind_identifier(self, condition, stack):
        return Q(
            Exists(Identifier.objects.filter(profile_id=OuterRef("pk"), identifier_type__slug=condition["identifier"]))
        )

    def kind_merge_confidence(self, condition, stack):
        threshold = condition["merge_confidence"]
        return _compare(F("merge_confidence"), _lookup(threshold["op"]), threshold["value"])

    def kind_segment(self, condition, stack):
        slug = condition["segment"]
        if slug in stack:
            raise SegmentCycleError(f"Segment {slug!r} refers back to itself through {' → '.join((*stack, slug))}")
        definition = self.resolve_segment(slug)
        if definition is None:
            raise LookupError(f"Unknown segment {slug!r}")
        return self.compile(definition, (*stack, slug))


def _lookup(op: str) -> str:
    return {"eq": "exact", "gt": "gt", "gte": "gte", "lt": "lt", "lte": "lte"}[op]


class JsonNumber(Expression):
    """The number at a key of a JSON column, NULL unless the JSON value is a number (for sums)."""

    output_field = FloatField()

    def __init__(self, column, path: tuple[str, ...]):
        super().__init__(output_field=FloatField())
        self.column = column if hasattr(column, "resolve_expression") else F(column)
        self.path = tuple(path)

    def get_source_expressions(self):
        return [self.column]

    def set_source_expressions(self, expressions):
        (self.column,) = expressions

    def as_sql(self, compiler, connection):
        column_sql, column_params = compiler.compile(self.column)
        if connection.vendor == "postgresql":
            value_sql = f"({column_sql} #> %s::text[])"
            params = [*column_params, list(self.path)]
            return (
                f"(CASE WHEN jsonb_typeof({value_sql}) = 'number' "
                f"THEN CAST({value_sql} #>> '{{}}' AS double precision) END)",
                params * 2,
            )
        from django.db.models.fields.json import compile_json_path

        path = compile_json_path(list(self.path))
        return (
            f"(CASE WHEN json_type({column_sql}, %s) IN ('integer', 'real') "
            f"THEN CAST(json_extract({column_sql}, %s) AS REAL) END)",
            [*column_params, path, *column_params, path],
        )


def compile_definition(definition: dict, *, now: datetime, resolve_segment: ResolveSegment) -> Q:
    """A filter over profiles.Profile matching the definition at `now` (references inlined)."""
    return _Compiler(now=now, resolve_segment=resolve_segment).compile(definition)


def segment_queryset(definition: dict, *, now: datetime, resolve_segment: ResolveSegment) -> QuerySet:
    """Active profiles matching the definition: one SQL statement when evaluated."""
    return Profile.objects.filter(status=Profile.ACTIVE).filter(
        compile_definition(definition, now=now, resolve_segment=resolve_segment)
    )


def profile_matches(profile_id: int, definition: dict, *, now: datetime, resolve_segment: ResolveSegment) -> bool:
    """Real-time evaluation of one profile, through the same compiled query."""
    return segment_queryset(definition, now=now, resolve_segment=resolve_segment).filter(pk=profile_id).exists()


# Public name for other apps (activations.lift filters conversion events the same way).
property_filters = _property_filters

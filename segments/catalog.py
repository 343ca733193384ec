"""What the segment builder's menus offer, read from the data and bounded.

Trait keys and the kinds of value they hold come from the most recently seen active profiles (one
query: `jsonb_each`/`jsonb_typeof` on PostgreSQL, `json_each` on SQLite), so the menu knows what is
really there without reading every profile. Event types come from the active contracts with their
declared properties, plus the undeclared properties sources were seen sending (schema drift).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import connection

from consent.domain import PURPOSES
from consent.sealing import is_sealed_key
from identity.models import IdentifierType
from profiles.contracts import DEFAULT_CONTRACTS
from profiles.models import EventContract, Profile, SchemaDrift
from segments.models import Segment

TRAIT_SAMPLE_SIZE = 5000
MAX_TRAIT_KEYS = 500
MAX_DRIFT_PROPERTIES = 2000
# A string trait that starts like an ISO date is offered date operators.
_DATE_GLOB = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*"
_DATE_REGEX = "^[0-9]{4}-[0-9]{2}-[0-9]{2}"


@dataclass(frozen=True)
class TraitInfo:
    key: str
    kinds: tuple[str, ...]  # "boolean", "date", "number", "string", "array", "object"
    profiles: int  # how many profiles of the sample hold it


@dataclass(frozen=True)
class PropertyInfo:
    name: str
    type: str  # the contract's type, or "undeclared" for drift


@dataclass(frozen=True)
class EventInfo:
    type: str
    description: str
    properties: tuple[PropertyInfo, ...]


@dataclass
class Catalog:
    traits: list[TraitInfo] = field(default_factory=list)
    events: list[EventInfo] = field(default_factory=list)
    purposes: list[tuple[str, str]] = field(default_factory=list)
    identifier_types: list[tuple[str, str]] = field(default_factory=list)
    segments: list[tuple[str, str]] = field(default_factory=list)

    def trait_kinds(self) -> dict[str, tuple[str, ...]]:
        return {trait.key: trait.kinds for trait in self.traits}

    def property_kinds(self) -> dict[tuple[str, str], str]:
        return {(event.type, prop.name): prop.type for event in self.events for prop in event.properties}

    def event(self, event_type: str) -> EventInfo | None:
        return next((event for event in self.events if event.type == event_type), None)


def _trait_sql(vendor: str) -> str:
    table = connection.ops.quote_name(Profile._meta.db_table)
    if vendor == "postgresql":
        return f"""
            SELECT t.key,
                   CASE WHEN jsonb_typeof(t.value) = 'string' AND (t.value #>> '{{}}') ~ '{_DATE_REGEX}' THEN 'date'
                        ELSE jsonb_typeof(t.value) END AS kind,
                   COUNT(*)
            FROM (SELECT traits FROM {table} WHERE status = %s
                  ORDER BY last_seen_at DESC NULLS LAST, id DESC LIMIT %s) AS p
            CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(p.traits) = 'object' THEN p.traits
                                               ELSE '{{}}'::jsonb END) AS t
            WHERE jsonb_typeof(t.value) <> 'null'
            GROUP BY 1, 2
        """  # noqa: S608 (table name from the model, values as parameters)
    return f"""
        SELECT j.key,
               CASE j.type WHEN 'true' THEN 'boolean' WHEN 'false' THEN 'boolean'
                           WHEN 'integer' THEN 'number' WHEN 'real' THEN 'number'
                           WHEN 'text' THEN CASE WHEN j.value GLOB '{_DATE_GLOB}' THEN 'date' ELSE 'string' END
                           ELSE j.type END AS kind,
               COUNT(*)
        FROM (SELECT traits FROM {table} WHERE status = %s
              ORDER BY last_seen_at IS NULL, last_seen_at DESC, id DESC LIMIT %s) AS p,
             json_each(CASE WHEN json_type(p.traits) = 'object' THEN p.traits ELSE '{{}}' END) AS j
        WHERE j.type <> 'null'
        GROUP BY 1, 2
    """  # noqa: S608


def trait_catalog(*, sample_size: int = TRAIT_SAMPLE_SIZE) -> list[TraitInfo]:
    """Trait keys of the most recently seen active profiles, the kinds of value each holds and how many
    of those profiles hold it; by key."""
    with connection.cursor() as cursor:
        cursor.execute(_trait_sql(connection.vendor), [Profile.ACTIVE, sample_size])
        rows = cursor.fetchall()
    kinds: dict[str, set[str]] = {}
    counts: dict[str, int] = {}
    for key, kind, count in rows:
        kinds.setdefault(key, set()).add(kind)
        counts[key] = counts.get(key, 0) + count
    # Keep the most widespread keys when there are very many.
    keys = sorted(counts, key=lambda key: (-counts[key], key))[:MAX_TRAIT_KEYS]
    # Personal traits hold tokens (consent/sealing.py): "personal" tells the builder to compare whole
    # values and to read typed numbers as numbers (birth_month 12, not "12").
    return [
        TraitInfo(
            key=key,
            kinds=("personal",) if is_sealed_key(key) else tuple(sorted(kinds[key])),
            profiles=counts[key],
        )
        for key in sorted(keys)
    ]


def event_catalog() -> list[EventInfo]:
    """Event types a definition may name (active contracts, else the defaults) with their properties:
    declared (required and optional, with their types) and undeclared ones seen in schema drift."""
    contracts = {
        contract.event_type: (contract.description, {**(contract.optional or {}), **(contract.required or {})})
        for contract in EventContract.objects.filter(is_active=True)
    }
    if not contracts:
        contracts = {
            event_type: (description, {**optional, **required})
            for event_type, (description, required, optional) in DEFAULT_CONTRACTS.items()
        }
    drift: dict[str, set[str]] = {}
    for event_type, name in (
        SchemaDrift.objects.filter(event_type__in=list(contracts))
        .order_by("-occurrences", "property_name")
        .values_list("event_type", "property_name")[:MAX_DRIFT_PROPERTIES]
    ):
        drift.setdefault(event_type, set()).add(name)
    events = []
    for event_type in sorted(contracts):
        description, declared = contracts[event_type]
        properties = [PropertyInfo(name, str(kind)) for name, kind in sorted(declared.items())]
        properties += [
            PropertyInfo(name, "undeclared") for name in sorted(drift.get(event_type, set()) - set(declared))
        ]
        events.append(EventInfo(type=event_type, description=description, properties=tuple(properties)))
    return events


def builder_catalog(*, exclude_segment: str | None = None, sample_size: int = TRAIT_SAMPLE_SIZE) -> Catalog:
    segments = Segment.objects.filter(published_version__isnull=False).order_by("slug")
    if exclude_segment:
        segments = segments.exclude(slug=exclude_segment)
    return Catalog(
        traits=trait_catalog(sample_size=sample_size),
        events=event_catalog(),
        purposes=list(PURPOSES),
        identifier_types=list(IdentifierType.objects.order_by("slug").values_list("slug", "name")),
        segments=list(segments.values_list("slug", "name")),
    )

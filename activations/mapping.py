"""Mapped field values, two ways that agree: as SQL (a fingerprint per person, for the diff) and in
Python (the payload, for the few people the diff says changed).

Identifier fields take the profile's most recently seen identifier of that type. The SQL side
fingerprints identifiers by their blind index (a keyed hash of the normalised value), so the diff
never needs cleartext PII; only payloads for changed people are decrypted.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from django.db import connection

from activations import domain
from consent.sealing import is_token, unseal_values
from identity.models import Identifier, IdentifierType
from profiles.models import Profile
from segments.models import ComputedTrait, ComputedTraitValue


@dataclass
class FieldPlan:
    """The contract fields a sync sends, with the ids the SQL needs."""

    fields: list[domain.ContractField]
    key_field: domain.ContractField
    identifier_type_ids: dict[str, int]  # slug -> id
    computed_ids: dict[str, int]  # key -> id
    signature: str  # changes whenever what is sent changes, so everyone is re-sent


def field_plan(sync) -> FieldPlan:
    """The fields a sync sends: its chosen contract fields and the idempotency key."""
    destination = sync.destination
    contract = destination.contract
    chosen = set(sync.fields or [field.name for field in contract])
    key_field = next(field for field in contract if field.name == destination.idempotency_key)
    return contract_plan(destination, [field for field in contract if field.name in chosen or field is key_field])


def contract_plan(destination, fields: list[domain.ContractField] | None = None) -> FieldPlan:
    """A plan over some of the destination's contract fields (all of them by default: a trigger's
    template may use any)."""
    contract = destination.contract
    fields = fields if fields is not None else contract
    key_field = next(field for field in contract if field.name == destination.idempotency_key)
    identifier_slugs = {field.key for field in fields if field.kind == "identifier"}
    computed_keys = {field.key for field in fields if field.kind == "computed"}
    identifier_type_ids = dict(IdentifierType.objects.filter(slug__in=identifier_slugs).values_list("slug", "id"))
    computed_ids = dict(ComputedTrait.objects.filter(key__in=computed_keys).values_list("key", "id"))
    signature = hashlib.md5(  # noqa: S324 - a change detector, not security
        json.dumps(
            [[f.name, f.source, f.pii] for f in fields] + [destination.pii_mode, key_field.name], sort_keys=True
        ).encode()
    ).hexdigest()
    return FieldPlan(fields, key_field, identifier_type_ids, computed_ids, signature)


# -- SQL ----------------------------------------------------------------------------------------------


class FieldSql:
    """Builds the value expression of each field and the joins they need, for one dialect."""

    def __init__(self, plan: FieldPlan, profile_column: str = "m.profile_id"):
        self.plan = plan
        self.pid = profile_column
        self.postgres = connection.vendor == "postgresql"
        self.joins: list[tuple[str, list]] = []
        self._aliases: dict[str, str] = {}

    def expression(self, field: domain.ContractField) -> tuple[str, list]:
        if field.kind == "trait":
            if self.postgres:
                return "(p.traits -> %s)::text", [field.key]
            return "CAST(json_extract(p.traits, %s) AS TEXT)", [_sqlite_path(field.key)]
        if field.kind == "profile":
            return f"CAST(p.{connection.ops.quote_name(field.key)} AS TEXT)", []
        if field.kind == "identifier":
            type_id = self.plan.identifier_type_ids.get(field.key)
            if type_id is None:
                return "NULL", []
            table = connection.ops.quote_name(Identifier._meta.db_table)
            if self.postgres:
                alias = self._join(
                    f"identifier:{field.key}",
                    lambda a: (
                        f"LEFT JOIN (SELECT DISTINCT ON (profile_id) profile_id, lookup_hash FROM {table} "  # noqa: S608
                        f"WHERE identifier_type_id = %s ORDER BY profile_id, last_seen_at DESC, id DESC) {a} "
                        f"ON {a}.profile_id = {self.pid}",
                        [type_id],
                    ),
                )
                return f"{alias}.lookup_hash", []
            return (
                f"(SELECT i.lookup_hash FROM {table} i WHERE i.profile_id = {self.pid} "  # noqa: S608
                "AND i.identifier_type_id = %s ORDER BY i.last_seen_at DESC, i.id DESC LIMIT 1)",
                [type_id],
            )
        if field.kind == "computed":
            trait_id = self.plan.computed_ids.get(field.key)
            if trait_id is None:
                return "NULL", []
            table = connection.ops.quote_name(ComputedTraitValue._meta.db_table)
            alias = self._join(
                f"computed:{field.key}",
                lambda a: (f"LEFT JOIN {table} {a} ON {a}.trait_id = %s AND {a}.profile_id = {self.pid}", [trait_id]),
            )
            return f"CAST({alias}.value AS TEXT)", []
        raise domain.ContractViolation(f"unknown source {field.source}")

    def _join(self, name: str, build) -> str:
        if name not in self._aliases:
            alias = f"j{len(self._aliases)}"
            self._aliases[name] = alias
            self.joins.append(build(alias))
        return self._aliases[name]

    def fingerprint(self) -> tuple[str, list]:
        parts, params = ["%s"], [self.plan.signature]
        for field in self.plan.fields:
            sql, field_params = self.expression(field)
            parts.append(f"COALESCE({sql}, '~')")
            params += field_params
        return "MD5(" + " || '|' || ".join(parts) + ")", params

    def key_hash(self) -> tuple[str, list]:
        sql, params = self.expression(self.plan.key_field)
        return f"MD5(%s || {sql})", ["key|", *params]

    def key_value(self) -> tuple[str, list]:
        return self.expression(self.plan.key_field)

    def join_sql(self) -> tuple[str, list]:
        return " ".join(sql for sql, _ in self.joins), [param for _, params in self.joins for param in params]


def _sqlite_path(key: str) -> str:
    from django.db.models.fields.json import compile_json_path

    return compile_json_path([key])


def consent_granted_sql(purpose: str) -> tuple[str, list]:
    if connection.vendor == "postgresql":
        return "COALESCE((p.consent -> %s ->> 'is_granted') = 'true', FALSE)", [purpose]
    from django.db.models.fields.json import compile_json_path

    return "COALESCE(json_extract(p.consent, %s) = 1, 0)", [compile_json_path([purpose, "is_granted"])]


# -- Python payloads ------------------------------------------------------------------------------


def payloads_for(plan: FieldPlan, profile_ids: list[int], *, hashed: bool) -> dict[int, dict]:
    """Contract field name -> value per profile, PII hashed when the destination takes hashes.
    Profiles that no longer exist are absent."""
    rows = list(Profile.objects.filter(id__in=profile_ids).values("id", "traits", *domain.PROFILE_COLUMNS - {"id"}))
    # Personal traits are sealed at rest: decrypt the ones the contract sends (one vault query).
    keys = {field.key for field in plan.fields if field.kind == "trait"}
    values = unseal_values(
        (row["traits"] or {}).get(key) for row in rows for key in keys if is_token((row["traits"] or {}).get(key))
    )
    for row in rows:
        row["traits"] = {
            key: values.get(value) if is_token(value) else value for key, value in (row["traits"] or {}).items()
        }
    profiles = {row["id"]: row for row in rows}
    identifiers: dict[tuple[int, int], str] = {}
    if plan.identifier_type_ids:
        rows = (
            Identifier.objects.filter(
                profile_id__in=profile_ids, identifier_type_id__in=plan.identifier_type_ids.values()
            )
            .order_by("profile_id", "identifier_type_id", "-last_seen_at", "-id")
            .only("profile_id", "identifier_type_id", "value", "encrypted_value")
        )
        for identifier in rows:
            identifiers.setdefault((identifier.profile_id, identifier.identifier_type_id), identifier.display_value)
    computed: dict[tuple[int, int], object] = {}
    if plan.computed_ids:
        for trait_id, profile_id, value in ComputedTraitValue.objects.filter(
            profile_id__in=profile_ids, trait_id__in=plan.computed_ids.values()
        ).values_list("trait_id", "profile_id", "value"):
            computed[(profile_id, trait_id)] = value
    payloads = {}
    for profile_id, profile in profiles.items():
        values = {}
        for field in plan.fields:
            value = _value(field, profile, identifiers, computed, plan)
            if hashed and field.pii:
                value = domain.sha256_normalised(field, value)
            values[field.name] = _plain(value)
        payloads[profile_id] = values
    return payloads


def _value(field, profile, identifiers, computed, plan):
    if field.kind == "trait":
        return (profile["traits"] or {}).get(field.key)
    if field.kind == "profile":
        return profile[field.key]
    if field.kind == "identifier":
        type_id = plan.identifier_type_ids.get(field.key)
        return identifiers.get((profile["id"], type_id))
    if field.kind == "computed":
        return computed.get((profile["id"], plan.computed_ids.get(field.key)))
    return None


def _plain(value):
    """JSON-safe: decimals as numbers, datetimes as ISO strings."""
    from datetime import datetime
    from decimal import Decimal

    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value

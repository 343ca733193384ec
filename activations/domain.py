"""Activation vocabulary and the field contract: what a destination may receive, checked before sending.

A contract field maps a destination field name onto one value of a profile:

    {"name": "email", "source": "identifier:email"}      the profile's most recently seen email
    {"name": "plan", "source": "trait:plan"}             a trait
    {"name": "churn", "source": "computed:churn_risk"}   a computed (or predictive) trait
    {"name": "ltv", "source": "profile:lifetime_revenue"} a profile column

Fields whose value is personal data (email, phone, name...) are marked `pii`; a destination that
takes hashed PII gets SHA-256 of the normalised value instead of the value.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from consent.domain import PURPOSE_SLUGS

UPSERT, UPDATE, REMOVE, DELETE = "upsert", "update", "remove", "delete"
OPERATIONS = (
    (UPSERT, "Upsert"),
    (UPDATE, "Update existing only"),
    (REMOVE, "Remove from audience"),
    (DELETE, "Delete person"),
)
OPERATION_SLUGS = frozenset(slug for slug, _ in OPERATIONS)
# A trigger's message (an SMS, a webhook call): not a state operation, never diffed.
MESSAGE = "message"

MODE_UPSERT, MODE_MIRROR, MODE_UPDATE_ONLY = "upsert", "mirror", "update_only"
MODES = (
    (MODE_UPSERT, "Upsert: add and change, never remove"),
    (MODE_MIRROR, "Mirror: add, change and remove"),
    (MODE_UPDATE_ONLY, "Update only: change people the destination already has"),
)

CLEARTEXT, HASHED = "cleartext", "hashed"
PII_MODES = ((CLEARTEXT, "Cleartext"), (HASHED, "SHA-256 of normalised values"))

# Why an intended operation was not sent. The order is the order the checks are applied in.
SKIP_TOMBSTONE, SKIP_CONSENT, SKIP_SUPPRESSION, SKIP_HOLDOUT, SKIP_LOW_CONFIDENCE, SKIP_NO_KEY = (
    "tombstone",
    "consent",
    "suppression",
    "holdout",
    "low_confidence",
    "no_key",
)
SKIP_REASONS = (
    (SKIP_TOMBSTONE, "Deleted person (tombstone)"),
    (SKIP_CONSENT, "No consent for the destination's purpose"),
    (SKIP_SUPPRESSION, "In a suppression segment"),
    (SKIP_HOLDOUT, "In the holdout group"),
    (SKIP_LOW_CONFIDENCE, "Merge confidence under the sync's threshold"),
    (SKIP_NO_KEY, "No value for the destination's idempotency key"),
)
# Trigger-only reasons.
SKIP_FREQUENCY_CAP, SKIP_MISSING_FIELD = "frequency_cap", "missing_field"
TRIGGER_SKIP_REASONS = SKIP_REASONS + (
    (SKIP_FREQUENCY_CAP, "Frequency cap reached"),
    (SKIP_MISSING_FIELD, "A field the message needs is empty"),
)

PROFILE_COLUMNS = frozenset(
    {"id", "lifetime_revenue", "lifecycle", "merge_confidence", "first_seen_at", "last_seen_at", "created_at"}
)
SOURCE_KINDS = ("trait", "identifier", "computed", "profile")
# Values that identify a person: hashed for destinations that take hashed PII.
PII_IDENTIFIER_TYPES = frozenset({"email", "phone"})
PII_TRAITS = frozenset({"email", "phone", "name", "first_name", "last_name", "address", "birthday", "date_of_birth"})

_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.$-]{0,99}$")


class ContractViolation(ValueError):
    """A write the destination's contract does not allow; refused before anything is sent."""


@dataclass(frozen=True)
class ContractField:
    name: str
    kind: str  # trait, identifier, computed, profile
    key: str
    pii: bool

    @property
    def source(self) -> str:
        return f"{self.kind}:{self.key}"


def parse_field(entry: dict) -> ContractField:
    if not isinstance(entry, dict):
        raise ContractViolation("each contract field is an object with a name and a source")
    name, source = entry.get("name"), entry.get("source")
    if not isinstance(name, str) or not _FIELD_NAME.match(name):
        raise ContractViolation(f"field name {name!r} is not a valid destination field name")
    if not isinstance(source, str) or ":" not in source:
        raise ContractViolation(
            f"field {name}: source must look like trait:<key>, identifier:<type>, computed:<key> or profile:<column>"
        )
    kind, _, key = source.partition(":")
    if kind not in SOURCE_KINDS or not key:
        raise ContractViolation(f"field {name}: unknown source kind {kind!r} (use {', '.join(SOURCE_KINDS)})")
    if kind == "profile" and key not in PROFILE_COLUMNS:
        raise ContractViolation(
            f"field {name}: profile:{key} is not a profile column ({', '.join(sorted(PROFILE_COLUMNS))})"
        )
    default_pii = (kind == "identifier" and key in PII_IDENTIFIER_TYPES) or (kind == "trait" and key in PII_TRAITS)
    pii = entry.get("pii", default_pii)
    if not isinstance(pii, bool):
        raise ContractViolation(f"field {name}: pii must be true or false")
    return ContractField(name=name, kind=kind, key=key, pii=pii)


def parse_contract(fields: list) -> list[ContractField]:
    if not isinstance(fields, list) or not fields:
        raise ContractViolation("a contract lists at least one field")
    parsed = [parse_field(entry) for entry in fields]
    names = [field.name for field in parsed]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ContractViolation(f"fields named more than once: {', '.join(duplicates)}")
    return parsed


def check_contract(
    *, fields: list, idempotency_key: str, operations: list, purpose: str, supported: frozenset
) -> list[ContractField]:
    """Validate a destination's contract against what its connector supports."""
    parsed = parse_contract(fields)
    if idempotency_key not in {field.name for field in parsed}:
        raise ContractViolation(f"the idempotency key {idempotency_key!r} must be one of the contract's fields")
    unknown = set(operations) - OPERATION_SLUGS - {MESSAGE}
    if unknown or not operations:
        raise ContractViolation(f"operations must be a non-empty subset of {', '.join(sorted(OPERATION_SLUGS))}")
    unsupported = set(operations) - supported
    if unsupported:
        raise ContractViolation(
            f"this connector cannot {', '.join(sorted(unsupported))} (it supports {', '.join(sorted(supported))})"
        )
    if purpose and purpose not in PURPOSE_SLUGS:
        raise ContractViolation(f"unknown consent purpose {purpose!r}")
    return parsed


def check_write(*, contract: list[ContractField], operations: list, operation: str, payload: dict) -> None:
    """The last gate before a request is built: the operation is allowed, every field is in the contract."""
    if operation not in operations:
        raise ContractViolation(f"operation {operation!r} is not allowed by the destination's contract")
    allowed = {field.name for field in contract}
    outside = sorted(set(payload) - allowed)
    if outside:
        raise ContractViolation(f"fields outside the destination's contract: {', '.join(outside)}")


def normalise_phone(value: str) -> str:
    """E.164 digits without the plus, as Meta and Google Customer Match expect."""
    from django.conf import settings

    from identity.domain import InvalidIdentifier
    from identity.domain import normalise_phone as e164

    try:
        value = e164(value, getattr(settings, "PHONE_DEFAULT_REGION", "US"))
    except InvalidIdentifier:
        pass  # an unparseable phone is hashed as its digits
    return re.sub(r"\D", "", value)


def sha256_normalised(field: ContractField, value) -> str | None:
    """SHA-256 hex of the normalised value (what ad platforms match on); never the cleartext."""
    if value is None or value == "":
        return None
    text = str(value)
    if field.key == "phone" or field.name.lower() in {"phone", "ph"}:
        text = normalise_phone(text)
    else:
        text = text.strip().lower()
    return hashlib.sha256(text.encode()).hexdigest()

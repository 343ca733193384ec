"""Pure identity rules: normalisers and the roles of identifier types. No ORM here."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import phonenumbers

EMAIL = "email"
PHONE = "phone"
EXACT = "exact"
NORMALISERS = ((EMAIL, "Email (trimmed, lower case)"), (PHONE, "Phone (E.164)"), (EXACT, "Exact (trimmed)"))

CANONICAL = "canonical"
HANDLE = "handle"
ANONYMOUS = "anonymous"
ROLES = (
    (CANONICAL, "Canonical: may join profiles"),
    (HANDLE, "Handle: attaches, never joins two profiles"),
    (ANONYMOUS, "Anonymous: joins only into a known profile"),
)

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class InvalidIdentifier(ValueError):
    """A value that cannot be normalised into an identifier of its type."""


def normalise_email(raw: str) -> str:
    value = unicodedata.normalize("NFKC", str(raw)).strip().lower()
    if value.startswith("mailto:"):
        value = value[len("mailto:") :]
    if not _EMAIL_RE.match(value):
        raise InvalidIdentifier(f"not an email address: {raw!r}")
    return value


def normalise_phone(raw: str, default_region: str = "US") -> str:
    text = str(raw).strip()
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else default_region)
    except phonenumbers.NumberParseException as error:
        raise InvalidIdentifier(f"not a phone number: {raw!r}") from error
    if not phonenumbers.is_possible_number(number):
        raise InvalidIdentifier(f"not a possible phone number: {raw!r}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_exact(raw) -> str:
    value = str(raw).strip()
    if not value:
        raise InvalidIdentifier("empty identifier")
    if len(value) > 255:
        raise InvalidIdentifier("identifier longer than 255 characters")
    return value


def normalise(normaliser: str, raw, *, default_region: str = "US") -> str:
    if raw is None:
        raise InvalidIdentifier("missing value")
    if normaliser == EMAIL:
        return normalise_email(raw)
    if normaliser == PHONE:
        return normalise_phone(raw, default_region)
    return normalise_exact(raw)


@dataclass(frozen=True)
class IdentifierRule:
    """What resolution needs to know about an identifier type."""

    id: int
    slug: str
    role: str
    normaliser: str
    limit_per_profile: int | None
    priority: int
    is_pii: bool


def would_exceed_limits(
    counts_a: dict[int, int], counts_b: dict[int, int], rules: dict[int, IdentifierRule]
) -> str | None:
    """Why merging two profiles with these identifier counts per type breaks a limit, or None.

    Counts are per identifier type id; limits are per profile (two different user_ids, say).
    """
    for type_id in sorted(set(counts_a) | set(counts_b)):
        rule = rules[type_id]
        if rule.limit_per_profile is None:
            continue
        total = counts_a.get(type_id, 0) + counts_b.get(type_id, 0)
        if total > rule.limit_per_profile:
            return f"merge would give the profile {total} {rule.slug} identifiers (limit {rule.limit_per_profile})"
    return None

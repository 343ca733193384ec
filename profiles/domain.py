"""The canonical shape every mapper produces, and the pure rules applied to it. No ORM here."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class IdentifierObservation:
    type: str  # IdentifierType slug
    value: Any  # raw value as sent; normalised by the resolver
    is_verified: bool = False


@dataclass(frozen=True)
class ConsentObservation:
    purpose: str  # one of consent.domain.PURPOSES
    is_granted: bool
    scope: str = ""
    evidence: dict = field(default_factory=dict)


@dataclass(frozen=True)
class CanonicalEvent:
    """What one raw event says about one person: a timeline event plus identity, traits and consent.

    `type` None means the observation carries identity/traits/consent but adds no timeline event.
    Revenue is signed: payments and orders positive, refunds negative.
    """

    type: str | None
    occurred_at: datetime
    identifiers: tuple[IdentifierObservation, ...] = ()
    name: str = ""
    properties: dict = field(default_factory=dict)
    traits: dict = field(default_factory=dict)
    verified_traits: frozenset[str] = frozenset()
    consent: tuple[ConsentObservation, ...] = ()
    revenue: Decimal | None = None
    currency: str = ""


class MappingError(ValueError):
    """The payload cannot be mapped; the raw event is quarantined with this reason."""


_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def trait_key(key: str) -> str:
    """Senders say firstName, first_name or First Name; profiles keep one spelling: first_name."""
    key = _CAMEL_BOUNDARY.sub("_", str(key).strip())
    return re.sub(r"[^a-z0-9_.]+", "_", key.lower()).strip("_")[:100]


def clean_traits(traits: dict | None) -> dict:
    """Snake-case keys and drop empty values (an empty string is not an observation)."""
    cleaned = {}
    for key, value in (traits or {}).items():
        if value is None or value == "" or value == {} or value == []:
            continue
        normal = trait_key(key)
        if normal:
            cleaned[normal] = value
    return cleaned

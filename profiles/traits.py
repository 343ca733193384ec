"""Trait precedence and the derived profile fields. Pure functions over plain values."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.utils.dateparse import parse_datetime

LAPSED_AFTER = timedelta(days=365)


def provenance(
    *, source_id: int, priority: int, observed_at: datetime, is_verified: bool, raw_event_id=None, identifier_id=None
) -> dict:
    return {
        "source_id": source_id,
        "priority": priority,
        "observed_at": observed_at.isoformat(),
        "is_verified": is_verified,
        "raw_event_id": raw_event_id,
        "identifier_id": identifier_id,
    }


def observed_at(entry: dict) -> datetime:
    return parse_datetime(entry["observed_at"]) if isinstance(entry["observed_at"], str) else entry["observed_at"]


def observation_wins(candidate: dict, current: dict | None) -> bool:
    """Verified beats inferred, then source priority, then recency.

    A verified value is never overwritten by an inferred one, whatever its priority or age.
    """
    if current is None:
        return True
    if candidate.get("is_verified", False) != current.get("is_verified", False):
        return candidate.get("is_verified", False)
    if candidate.get("priority", 0) != current.get("priority", 0):
        return candidate.get("priority", 0) > current.get("priority", 0)
    return observed_at(candidate) >= observed_at(current)


def refresh_if_repeated(traits: dict, trait_provenance: dict, key: str, value, entry: dict) -> bool:
    """An observation that repeats the current value from the same source and identifier, with the
    same verification, only refreshes when it was last seen. Returns True when that is all it was.

    The identifier matters: an unmerge gives each side the trait rows of its own identifiers, so
    a value seen through another identifier needs its own row."""
    current = trait_provenance.get(key)
    if (
        current is None
        or key not in traits
        or traits[key] != value
        or current.get("source_id") != entry["source_id"]
        or current.get("is_verified", False) != entry["is_verified"]
        or current.get("identifier_id") != entry.get("identifier_id")
    ):
        return False
    if observed_at(entry) > observed_at(current):
        trait_provenance[key] = {**current, "observed_at": entry["observed_at"], "raw_event_id": entry["raw_event_id"]}
    return True


def apply_trait(traits: dict, trait_provenance: dict, key: str, value, entry: dict) -> None:
    """Apply one observation to current traits in place, if it wins."""
    if observation_wins(entry, trait_provenance.get(key)):
        traits[key] = value
        trait_provenance[key] = entry


def combine_traits(traits_a: dict, provenance_a: dict, traits_b: dict, provenance_b: dict) -> tuple[dict, dict]:
    """Current traits of a merged profile: each key decided by the same precedence."""
    traits, trait_provenance = dict(traits_a), dict(provenance_a)
    for key, value in traits_b.items():
        entry = provenance_b.get(key)
        if entry is None:
            traits.setdefault(key, value)
            continue
        apply_trait(traits, trait_provenance, key, value, entry)
    return traits, trait_provenance


def apply_consent(summary: dict, purpose: str, *, is_granted: bool, captured_at: datetime, source_id) -> None:
    """The summary keeps the latest record per purpose (by capture time)."""
    current = summary.get(purpose)
    if current is not None and parse_datetime(current["captured_at"]) > captured_at:
        return
    summary[purpose] = {"is_granted": is_granted, "captured_at": captured_at.isoformat(), "source_id": source_id}


def combine_consent(summary_a: dict, summary_b: dict) -> dict:
    combined = dict(summary_a)
    for purpose, entry in summary_b.items():
        apply_consent(
            combined,
            purpose,
            is_granted=entry["is_granted"],
            captured_at=parse_datetime(entry["captured_at"]),
            source_id=entry.get("source_id"),
        )
    return combined


def lifecycle(*, is_known: bool, lifetime_revenue: Decimal, last_seen_at: datetime | None, now: datetime) -> str:
    if not is_known:
        return "anonymous"
    if lifetime_revenue > 0:
        if last_seen_at is not None and now - last_seen_at > LAPSED_AFTER:
            return "lapsed"
        return "customer"
    return "lead"

"""The onboarding scorecard: four 1-5 scores per source from its measured figures, and a ranking.

Pure functions over the figures dictionaries the audit stores (no ORM), so every formula is
testable on its own and the pages can print the same formulas they apply.
"""

from __future__ import annotations

import math

# How much work a sender's kind is before any measurement: tracking SDKs and Standard Webhooks
# senders speak our envelope; Stripe, Shopify and CSV need topic or column mapping; Mindbody needs
# site-scoped ids, profile mergers and has an unsigned timestamp.
KIND_COMPLEXITY = {"tracking": 1, "standard_webhook": 1, "stripe": 2, "shopify": 2, "csv": 2, "mindbody": 3}
MANY_EVENT_TYPES = 5
HIGH_ERROR_RATE = 0.02
POOR_TIMESTAMPS = 0.05

WEIGHTS = {"activation_impact": 0.4, "matchability": 0.3, "ingestion_complexity": 0.15, "pii_exposure": 0.15}

FORMULAS = {
    "activation_impact": (
        "1 + 4 × (0.5 × share of its people in an activated segment + 0.25 × its share of revenue "
        "+ 0.25 × share of its event types that activated segments or event triggers use), rounded half up"
    ),
    "matchability": "1 + 4 × share of its people also reached through another source's identifiers, rounded half up",
    "ingestion_complexity": (
        "kind (tracking, Standard Webhooks 1; Stripe, Shopify, CSV 2; Mindbody 3) + 1 if it sends "
        f"{MANY_EVENT_TYPES}+ event types + 1 if {HIGH_ERROR_RATE:.0%}+ of its raw events are quarantined or "
        "failed + 1 if it sends properties no contract declares + 1 if "
        f"{POOR_TIMESTAMPS:.0%}+ of its timestamps are missing, without a timezone or in the future; at most 5"
    ),
    "pii_exposure": (
        "1 + personal identifier types it sends (at most 2) + 1 if it sends personal traits "
        "+ 1 if it carries consent records; at most 5"
    ),
    "priority": (
        "0.4 × activation impact + 0.3 × matchability + 0.15 × (6 − ingestion complexity) "
        "+ 0.15 × (6 − PII and consent exposure): highest first"
    ),
}


def _half_up(value: float) -> int:
    return int(math.floor(value + 0.5))


def _clamp(value: int) -> int:
    return max(1, min(5, value))


def activation_impact(*, activated_share: float, revenue_share: float, used_event_type_share: float) -> int:
    raw = 0.5 * activated_share + 0.25 * revenue_share + 0.25 * used_event_type_share
    return _clamp(1 + _half_up(4 * raw))


def matchability(*, shared_profile_share: float) -> int:
    return _clamp(1 + _half_up(4 * shared_profile_share))


def ingestion_complexity(
    *, kind: str, event_types: int, error_rate: float, unknown_properties: int, poor_timestamp_share: float
) -> int:
    score = KIND_COMPLEXITY.get(kind, 2)
    score += event_types >= MANY_EVENT_TYPES
    score += error_rate >= HIGH_ERROR_RATE
    score += unknown_properties > 0
    score += poor_timestamp_share >= POOR_TIMESTAMPS
    return _clamp(score)


def pii_exposure(*, pii_identifier_types: int, pii_traits: int, consent_records: int) -> int:
    return _clamp(1 + min(2, pii_identifier_types) + (pii_traits > 0) + (consent_records > 0))


def priority(scores: dict) -> float:
    """Higher is onboarded first: impact and matchability count for, complexity and exposure against."""
    return round(
        WEIGHTS["activation_impact"] * scores["activation_impact"]
        + WEIGHTS["matchability"] * scores["matchability"]
        + WEIGHTS["ingestion_complexity"] * (6 - scores["ingestion_complexity"])
        + WEIGHTS["pii_exposure"] * (6 - scores["pii_exposure"]),
        2,
    )


def scorecard(figures: dict, *, total_revenue: float) -> dict:
    """The four scores of one source, the inputs each was computed from, and the priority."""
    activation = figures["activation"]
    revenue_share = (activation["revenue"] / total_revenue) if total_revenue > 0 else 0.0
    timestamps = figures["timestamps"]
    poor = max(timestamps["missing_share"] + timestamps["naive_share"], timestamps["future_share"])
    inputs = {
        "activated_share": activation["activated_profile_share"],
        "revenue_share": round(revenue_share, 4),
        "used_event_type_share": activation["used_event_type_share"],
        "shared_profile_share": figures["matchability"]["shared_profile_share"],
        "kind": figures["kind"],
        "event_types": len(figures["events_by_type"]),
        "error_rate": figures["contracts"]["error_rate"],
        "unknown_properties": figures["unknown_properties"]["count"],
        "poor_timestamp_share": round(poor, 4),
        "pii_identifier_types": len(figures["exposure"]["pii_identifier_types"]),
        "pii_traits": len(figures["exposure"]["pii_traits"]),
        "consent_records": figures["exposure"]["consent_records"],
    }
    scores = {
        "activation_impact": activation_impact(
            activated_share=inputs["activated_share"],
            revenue_share=revenue_share,
            used_event_type_share=inputs["used_event_type_share"],
        ),
        "matchability": matchability(shared_profile_share=inputs["shared_profile_share"]),
        "ingestion_complexity": ingestion_complexity(
            kind=inputs["kind"],
            event_types=inputs["event_types"],
            error_rate=inputs["error_rate"],
            unknown_properties=inputs["unknown_properties"],
            poor_timestamp_share=poor,
        ),
        "pii_exposure": pii_exposure(
            pii_identifier_types=inputs["pii_identifier_types"],
            pii_traits=inputs["pii_traits"],
            consent_records=inputs["consent_records"],
        ),
    }
    return {**scores, "priority": priority(scores), "inputs": inputs}


def ranking(scorecards: dict[str, dict], names: dict[str, str]) -> list[str]:
    """Source slugs, highest priority first; ties by name."""
    return sorted(scorecards, key=lambda slug: (-scorecards[slug]["priority"], names.get(slug, slug), slug))

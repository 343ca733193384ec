"""Helpers shared by the sender mappers."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from django.utils.dateparse import parse_datetime

from profiles.domain import MappingError

# ISO 4217 currencies without minor units: Stripe sends their amounts as is.
ZERO_DECIMAL_CURRENCIES = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split())


def from_unix(value) -> datetime:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise MappingError(f"expected a Unix timestamp, got {value!r}")
    return datetime.fromtimestamp(value, tz=UTC)


def from_iso(value, *, field: str) -> datetime:
    if isinstance(value, str):
        text = value.replace("Z", "+00:00") if value.endswith("Z") else value
        try:
            parsed = parse_datetime(text)
        except ValueError:
            parsed = None
        if parsed is not None:
            if parsed.tzinfo is None:
                raise MappingError(f"{field} has no timezone: {value!r}")
            return parsed
    raise MappingError(f"{field} is not an ISO 8601 timestamp: {value!r}")


def stripe_amount(minor_units, currency: str) -> float:
    """Stripe amounts are in the currency's smallest unit (cents), except zero-decimal currencies."""
    if not isinstance(minor_units, int) or isinstance(minor_units, bool):
        raise MappingError(f"amount must be an integer of minor units, got {minor_units!r}")
    if currency.upper() in ZERO_DECIMAL_CURRENCIES:
        return float(minor_units)
    return float(Decimal(minor_units) / 100)


def money(value, *, field: str) -> float:
    """Shopify sends money as decimal strings ("403.00")."""
    try:
        return float(Decimal(str(value)))
    except (InvalidOperation, ValueError, TypeError) as error:
        raise MappingError(f"{field} is not an amount: {value!r}") from error


def compact(mapping: dict) -> dict:
    return {key: value for key, value in mapping.items() if value not in (None, "", [], {})}

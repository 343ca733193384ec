"""CSV rows (stored by profiles.csv_import) to canonical events, with their import's mapping."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from zoneinfo import ZoneInfo

from django.utils.dateparse import parse_date, parse_datetime

from profiles.domain import CanonicalEvent, ConsentObservation, IdentifierObservation, MappingError, clean_traits
from profiles.models import CsvImport, EventContract

_TRUE = {"1", "true", "yes", "y", "subscribed", "granted", "opt-in", "opt_in", "on"}
_FALSE = {"0", "false", "no", "n", "unsubscribed", "not_subscribed", "withdrawn", "opt-out", "opt_out", "off"}
REVENUE_SIGN = {"payment.succeeded": 1, "order.completed": 1, "refund.issued": -1}
REVENUE_FIELDS = {"payment.succeeded": "amount", "order.completed": "total", "refund.issued": "amount"}


@lru_cache(maxsize=64)
def _mapping(import_id: int) -> dict:
    return CsvImport.objects.values_list("mapping", flat=True).get(pk=import_id)


def _contract_types(event_type: str) -> dict:
    contract = EventContract.objects.filter(event_type=event_type).values("required", "optional").first() or {}
    return {**(contract.get("optional") or {}), **(contract.get("required") or {})}


def _time(text: str, zone: str) -> datetime:
    parsed = parse_datetime(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    if parsed is None:
        day = parse_date(text)
        if day is None:
            raise MappingError(f"occurred_at {text!r} is not an ISO 8601 date or time")
        parsed = datetime(day.year, day.month, day.day)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(zone))  # naive values are in the mapping's timezone
    return parsed


def _typed(value: str, type_name: str | None, column: str):
    if type_name in ("number", "integer"):
        try:
            number = Decimal(value.replace(",", ""))
        except InvalidOperation as error:
            raise MappingError(f"column {column!r}: {value!r} is not a number") from error
        return int(number) if type_name == "integer" else float(number)
    if type_name == "boolean":
        lowered = value.strip().lower()
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE
    return value


def map_raw_event(raw_event) -> list[CanonicalEvent]:
    payload = raw_event.payload
    try:
        mapping = _mapping(payload["import_id"])
    except CsvImport.DoesNotExist as error:
        raise MappingError(f"CSV import {payload.get('import_id')} no longer exists") from error
    event_type = mapping["event_type"]
    property_types = _contract_types(event_type)
    identifiers, traits, properties, consent = [], {}, {}, []
    occurred_at = None
    for column, target in mapping["columns"].items():
        value = (payload["row"].get(column) or "").strip()
        if not value or target in ("ignore", "external_id"):
            continue
        kind, _, name = target.partition(":")
        if target == "occurred_at":
            occurred_at = _time(value, mapping.get("timezone") or "UTC")
        elif kind == "identifier":
            identifiers.append(IdentifierObservation(name, value))
        elif kind == "trait":
            traits[name] = value
        elif kind == "property":
            properties[name] = _typed(value, property_types.get(name), column)
        elif kind == "consent":
            lowered = value.lower()
            if lowered not in _TRUE | _FALSE:
                raise MappingError(f"column {column!r}: {value!r} is not a yes/no consent value")
            consent.append(ConsentObservation(name, lowered in _TRUE, evidence={"csv_line": payload["line"]}))
    if not identifiers:
        raise MappingError(f"line {payload['line']}: no identifier value")
    revenue = None
    if event_type in REVENUE_FIELDS and isinstance(properties.get(REVENUE_FIELDS[event_type]), int | float):
        revenue = Decimal(str(properties[REVENUE_FIELDS[event_type]])) * REVENUE_SIGN[event_type]
    return [
        CanonicalEvent(
            type=event_type,
            occurred_at=occurred_at or raw_event.received_at,
            identifiers=tuple(identifiers),
            name="csv",
            properties=properties,
            traits=clean_traits(traits),
            consent=tuple(consent),
            revenue=revenue,
            currency=str(properties.get("currency") or "").upper()[:3],
        )
    ]

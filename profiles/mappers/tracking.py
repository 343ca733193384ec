"""Segment spec messages (identify, track, page, screen, group, alias) to canonical events."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation

from django.utils.dateparse import parse_datetime

from consent.domain import purpose_for_category
from identity.defaults import DEFAULT_IDENTIFIER_TYPES
from profiles.domain import CanonicalEvent, ConsentObservation, IdentifierObservation, MappingError, clean_traits

# Segment's semantic event names (e-commerce spec) and the canonical types they become.
SEMANTIC_EVENTS = {
    "order completed": "order.completed",
    "order cancelled": "order.cancelled",
    "order refunded": "refund.issued",
    "product viewed": "product.viewed",
    "product added": "product.added",
    "checkout started": "checkout.started",
}


def _time(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = parse_datetime(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        return None
    return parsed


def occurred_at(message: dict) -> datetime:
    """Segment's clock-skew correction: timestamp = receivedAt - (sentAt - originalTimestamp)."""
    received = _time(message.get("receivedAt"))
    if received is None:
        raise MappingError("message has no receivedAt")
    original = _time(message.get("originalTimestamp")) or _time(message.get("timestamp"))
    sent = _time(message.get("sentAt"))
    if original is not None and sent is not None and original.tzinfo and sent.tzinfo:
        return received - (sent - original)
    if original is not None and original.tzinfo:
        return original
    return received


def _identifiers(message: dict, traits: dict) -> tuple[IdentifierObservation, ...]:
    found = []
    if message.get("userId") not in (None, ""):
        found.append(IdentifierObservation("user_id", str(message["userId"])))
    if message.get("anonymousId") not in (None, ""):
        found.append(IdentifierObservation("anonymous_id", str(message["anonymousId"])))
    if message.get("type") == "alias" and message.get("previousId"):
        found.append(IdentifierObservation("anonymous_id", str(message["previousId"])))
    for key in ("email", "phone"):
        if traits.get(key):
            found.append(IdentifierObservation(key, traits[key]))
    for external in (message.get("context") or {}).get("externalIds") or []:
        if isinstance(external, dict) and external.get("type") in DEFAULT_IDENTIFIER_TYPES and external.get("id"):
            found.append(IdentifierObservation(external["type"], str(external["id"])))
    return tuple(found)


def _consent(message: dict) -> tuple[ConsentObservation, ...]:
    consent = (message.get("context") or {}).get("consent") or {}
    preferences = consent.get("categoryPreferences") if isinstance(consent, dict) else None
    if not isinstance(preferences, dict):
        return ()
    observations = []
    for category, granted in sorted(preferences.items()):
        purpose = purpose_for_category(category)
        if purpose and isinstance(granted, bool):
            observations.append(
                ConsentObservation(purpose, granted, evidence={"category": category, "via": "context.consent"})
            )
    return tuple(observations)


def _number(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    try:
        return float(Decimal(str(value)))
    except (InvalidOperation, ValueError, TypeError):
        return None


def _track(message: dict) -> tuple[str, dict, Decimal | None, str]:
    name = message["event"]
    properties = dict(message.get("properties") or {})
    canonical = SEMANTIC_EVENTS.get(name.strip().lower(), "track.custom")
    currency = str(properties.get("currency") or "").upper()
    revenue = None
    if canonical == "order.completed":
        total = _number(properties.get("total", properties.get("revenue")))
        if properties.get("order_id") is None or total is None:
            canonical = "track.custom"
        else:
            properties["order_id"] = str(properties["order_id"])
            properties["total"] = total
            properties["currency"] = currency or "USD"
            revenue = Decimal(str(total))
    elif canonical == "order.cancelled":
        if properties.get("order_id") is None:
            canonical = "track.custom"
        else:
            properties["order_id"] = str(properties["order_id"])
    elif canonical == "refund.issued":
        amount = _number(properties.get("total", properties.get("revenue")))
        if properties.get("order_id") is None or amount is None:
            canonical = "track.custom"
        else:
            properties.setdefault("refund_id", f"order-{properties['order_id']}")
            properties["refund_id"] = str(properties["refund_id"])
            properties["order_id"] = str(properties["order_id"])
            properties["amount"] = abs(amount)
            properties["currency"] = currency or "USD"
            revenue = -Decimal(str(abs(amount)))
    for key in ("product_id", "sku", "cart_id", "order_id"):
        if key in properties and properties[key] is not None and not isinstance(properties[key], str):
            properties[key] = str(properties[key])
    return canonical, properties, revenue, properties.get("currency", currency) if revenue is not None else currency


def map_raw_event(raw_event) -> list[CanonicalEvent]:
    message = raw_event.payload
    call = message.get("type")
    context = message.get("context") or {}
    traits = clean_traits(
        {**(context.get("traits") or {}), **((message.get("traits") or {}) if call in ("identify", "group") else {})}
    )
    if call == "group":
        group_traits = traits
        traits = clean_traits(context.get("traits") or {})
    when = occurred_at(message)
    name, revenue, currency = "", None, ""
    properties = dict(message.get("properties") or {})
    if call == "identify":
        event_type = "profile.identified"
        properties = {}
    elif call == "track":
        event_type, properties, revenue, currency = _track(message)
        name = message["event"]
    elif call == "page":
        event_type = "page.viewed"
        page = context.get("page") or {}
        for key in ("url", "path", "title", "referrer", "search"):
            if key not in properties and isinstance(page.get(key), str):
                properties[key] = page[key]
        if message.get("name") and "name" not in properties:
            properties["name"] = str(message["name"])
        if message.get("category") and "category" not in properties:
            properties["category"] = str(message["category"])
        name = str(message.get("name") or "")
    elif call == "screen":
        event_type = "screen.viewed"
        if message.get("name") and "name" not in properties:
            properties["name"] = str(message["name"])
        name = str(message.get("name") or "")
    elif call == "group":
        event_type = "group.joined"
        properties = {"group_id": str(message["groupId"])}
        if group_traits:
            properties["traits"] = group_traits
    elif call == "alias":
        event_type = "profile.aliased"
        properties = {"previous_id": str(message["previousId"])}
    else:
        raise MappingError(f"unknown call type {call!r}")
    return [
        CanonicalEvent(
            type=event_type,
            occurred_at=when,
            identifiers=_identifiers(message, traits),
            name=name,
            properties=properties,
            traits=traits,
            consent=_consent(message),
            revenue=revenue,
            currency=currency,
        )
    ]

"""Event contracts: the schema each canonical event type must satisfy before it is applied.

Contracts live in the database (EventContract), seeded from DEFAULT_CONTRACTS, so an integration
engineer can fix one in the admin and replay the events it quarantined.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils.dateparse import parse_datetime

# type: (description, required properties, optional properties)
DEFAULT_CONTRACTS: dict[str, tuple[str, dict, dict]] = {
    "customer.created": ("A source created a customer record.", {}, {"customer_id": "string"}),
    "customer.updated": ("A source changed a customer record.", {}, {"customer_id": "string"}),
    "customer.imported": ("A customer row from a CSV backfill.", {}, {}),
    "customer.merged": (
        "The source merged two of its customer records into one.",
        {"winner_id": "string", "loser_id": "string"},
        {},
    ),
    "payment.succeeded": (
        "Money was taken.",
        {"payment_id": "string", "amount": "number", "currency": "string"},
        {"description": "string", "order_id": "string", "invoice_id": "string", "payment_method": "string"},
    ),
    "payment.failed": (
        "A payment attempt failed.",
        {"payment_id": "string", "amount": "number", "currency": "string"},
        {"failure_reason": "string", "description": "string"},
    ),
    "refund.issued": (
        "Money was given back.",
        {"refund_id": "string", "amount": "number", "currency": "string"},
        {"payment_id": "string", "reason": "string", "order_id": "string"},
    ),
    "order.placed": (
        "An order was placed (not necessarily paid).",
        {"order_id": "string", "total": "number", "currency": "string"},
        {"order_number": "string", "products": "array", "financial_status": "string"},
    ),
    "order.completed": (
        "An order was paid.",
        {"order_id": "string", "total": "number", "currency": "string"},
        {
            "order_number": "string",
            "products": "array",
            "discount": "number",
            "tax": "number",
            "shipping": "number",
            "coupon": "string",
            "subtotal": "number",
            "revenue": "number",
            "checkout_id": "string",
            "affiliation": "string",
        },
    ),
    "order.cancelled": (
        "An order was cancelled.",
        {"order_id": "string"},
        {"reason": "string", "total": "number", "currency": "string"},
    ),
    "booking.created": (
        "A class or appointment was booked.",
        {"booking_id": "string"},
        {
            "class_id": "string",
            "class_name": "string",
            "starts_at": "datetime",
            "ends_at": "datetime",
            "location": "string",
            "staff": "string",
            "service": "string",
            "site_id": "string",
        },
    ),
    "booking.cancelled": (
        "A booking was cancelled.",
        {"booking_id": "string"},
        {
            "class_id": "string",
            "class_name": "string",
            "starts_at": "datetime",
            "late_cancel": "boolean",
            "location": "string",
            "site_id": "string",
        },
    ),
    "class.attended": (
        "The person signed in to a class or visit.",
        {"booking_id": "string"},
        {
            "class_id": "string",
            "class_name": "string",
            "starts_at": "datetime",
            "location": "string",
            "staff": "string",
            "site_id": "string",
        },
    ),
    "page.viewed": (
        "A web page view.",
        {},
        {
            "url": "string",
            "path": "string",
            "title": "string",
            "referrer": "string",
            "search": "string",
            "name": "string",
            "category": "string",
        },
    ),
    "screen.viewed": ("A mobile screen view.", {}, {"name": "string", "category": "string"}),
    "profile.identified": ("The person identified themselves (Segment identify).", {}, {}),
    "profile.aliased": ("Two ids were declared the same person (Segment alias).", {}, {"previous_id": "string"}),
    "group.joined": (
        "The person was associated with a group or account.",
        {"group_id": "string"},
        {"traits": "object"},
    ),
    "product.viewed": (
        "A product was viewed.",
        {},
        {
            "product_id": "string",
            "sku": "string",
            "name": "string",
            "price": "number",
            "category": "string",
            "brand": "string",
            "currency": "string",
            "url": "string",
        },
    ),
    "product.added": (
        "A product was added to a cart.",
        {},
        {
            "product_id": "string",
            "sku": "string",
            "name": "string",
            "price": "number",
            "quantity": "number",
            "category": "string",
            "cart_id": "string",
            "currency": "string",
        },
    ),
    "checkout.started": (
        "A checkout was started.",
        {},
        {"order_id": "string", "value": "number", "revenue": "number", "currency": "string", "products": "array"},
    ),
    "track.custom": ("Any other tracked event; its name is the sender's event name.", {}, {}),
}

_TYPE_CHECKS = {
    "string": lambda value: isinstance(value, str),
    "number": lambda value: isinstance(value, int | float) and not isinstance(value, bool),
    "integer": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "boolean": lambda value: isinstance(value, bool),
    "object": lambda value: isinstance(value, dict),
    "array": lambda value: isinstance(value, list),
    "datetime": lambda value: isinstance(value, str) and _is_aware_datetime(value),
}
TYPE_NAMES = tuple(_TYPE_CHECKS)


def _is_aware_datetime(text: str) -> bool:
    try:
        parsed = parse_datetime(text)
    except ValueError:
        return False
    return parsed is not None and parsed.tzinfo is not None


@dataclass(frozen=True)
class Contract:
    event_type: str
    required: dict
    optional: dict

    @property
    def known(self) -> frozenset[str]:
        return frozenset(self.required) | frozenset(self.optional)


@dataclass(frozen=True)
class ContractResult:
    violations: tuple[str, ...]
    unknown_properties: tuple[str, ...]

    @property
    def is_valid(self) -> bool:
        return not self.violations


def check_event(contract: Contract | None, event_type: str, occurred_at, properties: dict) -> ContractResult:
    """Check one canonical event against its contract. A type with no contract is a violation."""
    violations = []
    if not isinstance(occurred_at, datetime) or occurred_at.tzinfo is None:
        violations.append("occurred_at must be a timezone-aware timestamp")
    if contract is None:
        return ContractResult((*violations, f"no contract for event type {event_type!r}"), ())
    if not isinstance(properties, dict):
        return ContractResult((*violations, "properties must be an object"), ())
    for name, type_name in contract.required.items():
        if properties.get(name) is None:
            violations.append(f"{event_type}: required property {name!r} is missing")
        elif not _TYPE_CHECKS.get(type_name, lambda value: True)(properties[name]):
            violations.append(
                f"{event_type}: property {name!r} must be {type_name}, got {type(properties[name]).__name__}"
            )
    for name, type_name in contract.optional.items():
        value = properties.get(name)
        if value is not None and not _TYPE_CHECKS.get(type_name, lambda value: True)(value):
            violations.append(f"{event_type}: property {name!r} must be {type_name}, got {type(value).__name__}")
    unknown = tuple(sorted(name for name in properties if name not in contract.known))
    return ContractResult(tuple(violations), unknown)

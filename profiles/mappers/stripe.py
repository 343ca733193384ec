"""Stripe events (https://docs.stripe.com/api/events) to canonical events.

- customer.created / customer.updated -> customer.*: stripe_customer_id (a handle), email, phone
- payment_intent.succeeded -> payment.succeeded (revenue); payment_intent.payment_failed -> payment.failed
- charge.succeeded -> payment.succeeded only for charges without a PaymentIntent (legacy Charges
  API), so a PaymentIntent payment is not counted twice
- charge.refunded -> refund.issued with the newly refunded amount (negative revenue)
"""

from __future__ import annotations

from decimal import Decimal

from profiles.domain import CanonicalEvent, IdentifierObservation, MappingError, clean_traits
from profiles.mappers.common import compact, from_unix, stripe_amount


def _identifiers(customer_id, *, email=None, phone=None) -> tuple[IdentifierObservation, ...]:
    found = []
    if isinstance(customer_id, dict):  # an expanded customer object
        customer_id = customer_id.get("id")
    if customer_id:
        found.append(IdentifierObservation("stripe_customer_id", customer_id))
    if email:
        found.append(IdentifierObservation("email", email))
    if phone:
        found.append(IdentifierObservation("phone", phone))
    return tuple(found)


def _address_traits(address: dict | None) -> dict:
    address = address or {}
    return compact(
        {"city": address.get("city"), "postal_code": address.get("postal_code"), "country": address.get("country")}
    )


def _customer(event: dict, obj: dict) -> list[CanonicalEvent]:
    name = obj.get("name") or ""
    first, _, last = name.partition(" ")
    traits = clean_traits(
        {
            "name": name,
            "first_name": first,
            "last_name": last,
            "email": obj.get("email"),
            "phone": obj.get("phone"),
            **_address_traits(obj.get("address")),
        }
    )
    return [
        CanonicalEvent(
            type="customer.created" if event["type"] == "customer.created" else "customer.updated",
            occurred_at=from_unix(event.get("created")),
            identifiers=_identifiers(obj.get("id"), email=obj.get("email"), phone=obj.get("phone")),
            name=event["type"],
            properties={"customer_id": obj["id"]},
            traits=traits,
        )
    ]


def _payment(event: dict, obj: dict, *, canonical: str) -> list[CanonicalEvent]:
    currency = str(obj.get("currency") or "").upper()
    if not currency:
        raise MappingError(f"{event['type']} {obj.get('id')} has no currency")
    billing = obj.get("billing_details") or {}
    minor = (
        obj.get("amount_received")
        if canonical == "payment.succeeded" and obj.get("amount_received")
        else obj.get("amount")
    )
    amount = stripe_amount(minor, currency)
    properties = compact(
        {
            "payment_id": obj.get("id"),
            "amount": amount,
            "currency": currency,
            "description": obj.get("description"),
            "invoice_id": obj.get("invoice") if isinstance(obj.get("invoice"), str) else None,
            "failure_reason": (obj.get("last_payment_error") or {}).get("message")
            if canonical == "payment.failed"
            else None,
        }
    )
    return [
        CanonicalEvent(
            type=canonical,
            occurred_at=from_unix(event.get("created")),
            identifiers=_identifiers(
                obj.get("customer"), email=obj.get("receipt_email") or billing.get("email"), phone=billing.get("phone")
            ),
            name=event["type"],
            properties=properties,
            traits=clean_traits({"name": billing.get("name"), **_address_traits(billing.get("address"))}),
            revenue=Decimal(str(amount)) if canonical == "payment.succeeded" else None,
            currency=currency,
        )
    ]


def _refund(event: dict, charge: dict) -> list[CanonicalEvent]:
    currency = str(charge.get("currency") or "").upper()
    previous = (event.get("data") or {}).get("previous_attributes") or {}
    refunded_now = charge.get("amount_refunded", 0) - previous.get("amount_refunded", 0)
    if refunded_now <= 0:
        return []
    amount = stripe_amount(refunded_now, currency)
    refunds = (charge.get("refunds") or {}).get("data") or []
    refund_id = (
        refunds[0]["id"] if refunds and refunds[0].get("id") else f"{charge['id']}:{charge.get('amount_refunded')}"
    )
    billing = charge.get("billing_details") or {}
    return [
        CanonicalEvent(
            type="refund.issued",
            occurred_at=from_unix(event.get("created")),
            identifiers=_identifiers(
                charge.get("customer"),
                email=charge.get("receipt_email") or billing.get("email"),
                phone=billing.get("phone"),
            ),
            name=event["type"],
            properties=compact(
                {
                    "refund_id": refund_id,
                    "amount": amount,
                    "currency": currency,
                    "payment_id": charge.get("payment_intent") or charge.get("id"),
                }
            ),
            revenue=-Decimal(str(amount)),
            currency=currency,
        )
    ]


def map_raw_event(raw_event) -> list[CanonicalEvent]:
    event = raw_event.payload
    obj = ((event.get("data") or {}).get("object")) or {}
    kind = event.get("type")
    if not isinstance(obj, dict) or not obj.get("id"):
        raise MappingError(f"Stripe event {event.get('id')} has no data.object")
    if kind in ("customer.created", "customer.updated"):
        return _customer(event, obj)
    if kind == "payment_intent.succeeded":
        return _payment(event, obj, canonical="payment.succeeded")
    if kind == "payment_intent.payment_failed":
        return _payment(event, obj, canonical="payment.failed")
    if kind == "charge.succeeded":
        return [] if obj.get("payment_intent") else _payment(event, obj, canonical="payment.succeeded")
    if kind == "charge.refunded":
        return _refund(event, obj)
    return []  # other topics are stored and acknowledged, not mapped

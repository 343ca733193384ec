"""Shopify webhooks (topic in X-Shopify-Topic) to canonical events.

- customers/create, customers/update -> customer.* with email/SMS marketing consent
- orders/create -> order.placed; orders/paid -> order.completed (revenue); orders/cancelled -> order.cancelled
- refunds/create -> refund.issued (negative revenue), attributed through the order id, which
  orders attach to the buyer as a `shopify_order_id` handle
"""

from __future__ import annotations

from decimal import Decimal

from consent.domain import EMAIL_MARKETING, SMS_MARKETING
from profiles.domain import CanonicalEvent, ConsentObservation, IdentifierObservation, MappingError, clean_traits
from profiles.mappers.common import compact, from_iso, money

# Shopify's marketing consent states: subscribed and pending (double opt-in started) are not yet
# the same; only "subscribed" grants. "redacted" is a GDPR redaction: treated as withdrawn.
_GRANTED = {"subscribed": True, "not_subscribed": False, "unsubscribed": False, "redacted": False}


def _consent(customer: dict, when) -> tuple[ConsentObservation, ...]:
    observations = []
    for field, purpose in (("email_marketing_consent", EMAIL_MARKETING), ("sms_marketing_consent", SMS_MARKETING)):
        consent = customer.get(field)
        if isinstance(consent, dict) and consent.get("state") in _GRANTED:
            observations.append(
                ConsentObservation(
                    purpose,
                    _GRANTED[consent["state"]],
                    scope=consent.get("opt_in_level") or "",
                    evidence=compact(
                        {
                            "state": consent["state"],
                            "opt_in_level": consent.get("opt_in_level"),
                            "consent_updated_at": consent.get("consent_updated_at"),
                            "consent_collected_from": consent.get("consent_collected_from"),
                        }
                    ),
                )
            )
    return tuple(observations)


def _customer_identifiers(customer: dict, *, email=None, phone=None) -> list[IdentifierObservation]:
    found = []
    if customer.get("id"):
        found.append(IdentifierObservation("shopify_customer_id", str(customer["id"])))
    email = customer.get("email") or email
    if email:
        found.append(IdentifierObservation("email", email, is_verified=bool(customer.get("verified_email"))))
    phone = customer.get("phone") or phone
    if phone:
        found.append(IdentifierObservation("phone", phone))
    return found


def _customer_traits(customer: dict) -> tuple[dict, frozenset]:
    address = customer.get("default_address") or {}
    traits = clean_traits(
        {
            "first_name": customer.get("first_name"),
            "last_name": customer.get("last_name"),
            "email": customer.get("email"),
            "phone": customer.get("phone"),
            "city": address.get("city"),
            "postal_code": address.get("zip"),
            "country": address.get("country_code"),
            "shopify_tags": customer.get("tags"),
        }
    )
    verified = frozenset({"email"}) if customer.get("verified_email") and "email" in traits else frozenset()
    return traits, verified


def _customer_event(topic: str, customer: dict) -> list[CanonicalEvent]:
    when = from_iso(customer.get("updated_at") or customer.get("created_at"), field="updated_at")
    traits, verified = _customer_traits(customer)
    return [
        CanonicalEvent(
            type="customer.created" if topic == "customers/create" else "customer.updated",
            occurred_at=when,
            identifiers=tuple(_customer_identifiers(customer)),
            name=topic,
            properties={"customer_id": str(customer["id"])},
            traits=traits,
            verified_traits=verified,
            consent=_consent(customer, when),
        )
    ]


def _order_event(topic: str, order: dict) -> list[CanonicalEvent]:
    customer = order.get("customer") or {}
    identifiers = _customer_identifiers(
        customer, email=order.get("email") or order.get("contact_email"), phone=order.get("phone")
    )
    identifiers.append(IdentifierObservation("shopify_order_id", str(order["id"])))
    currency = str(order.get("currency") or "").upper()
    canonical = {
        "orders/create": "order.placed",
        "orders/paid": "order.completed",
        "orders/cancelled": "order.cancelled",
    }[topic]
    total = money(order.get("total_price"), field="total_price") if order.get("total_price") is not None else None
    properties = compact(
        {
            "order_id": str(order["id"]),
            "order_number": str(order.get("order_number") or order.get("name") or "") or None,
            "total": total,
            "currency": currency,
            "subtotal": money(order["subtotal_price"], field="subtotal_price") if order.get("subtotal_price") else None,
            "tax": money(order["total_tax"], field="total_tax") if order.get("total_tax") else None,
            "discount": money(order["total_discounts"], field="total_discounts")
            if order.get("total_discounts")
            else None,
            "financial_status": order.get("financial_status") if canonical == "order.placed" else None,
            "reason": order.get("cancel_reason") if canonical == "order.cancelled" else None,
            "products": [
                compact(
                    {
                        "product_id": str(item.get("product_id") or ""),
                        "sku": item.get("sku"),
                        "name": item.get("title"),
                        "quantity": item.get("quantity"),
                        "price": money(item.get("price", 0), field="line_items.price"),
                    }
                )
                for item in order.get("line_items") or []
            ]
            if canonical != "order.cancelled"
            else None,
        }
    )
    when_field = {"order.placed": "created_at", "order.completed": "processed_at", "order.cancelled": "cancelled_at"}
    when = from_iso(order.get(when_field[canonical]) or order.get("updated_at"), field=when_field[canonical])
    traits, verified = _customer_traits(customer)
    consent = list(_consent(customer, when))
    if not consent and isinstance(order.get("buyer_accepts_marketing"), bool):
        consent.append(
            ConsentObservation(
                EMAIL_MARKETING,
                order["buyer_accepts_marketing"],
                evidence={"buyer_accepts_marketing": order["buyer_accepts_marketing"]},
            )
        )
    return [
        CanonicalEvent(
            type=canonical,
            occurred_at=when,
            identifiers=tuple(identifiers),
            name=topic,
            properties=properties,
            traits=traits,
            verified_traits=verified,
            consent=tuple(consent),
            revenue=Decimal(str(total)) if canonical == "order.completed" and total is not None else None,
            currency=currency,
        )
    ]


def _refund_event(topic: str, refund: dict) -> list[CanonicalEvent]:
    transactions = [
        t for t in refund.get("transactions") or [] if t.get("kind") == "refund" and t.get("status") == "success"
    ]
    if not transactions:
        return []
    amount = sum(Decimal(str(money(t.get("amount"), field="transactions.amount"))) for t in transactions)
    currency = str(transactions[0].get("currency") or "").upper()
    return [
        CanonicalEvent(
            type="refund.issued",
            occurred_at=from_iso(refund.get("processed_at") or refund.get("created_at"), field="processed_at"),
            identifiers=(IdentifierObservation("shopify_order_id", str(refund["order_id"])),),
            name=topic,
            properties=compact(
                {
                    "refund_id": str(refund["id"]),
                    "amount": float(amount),
                    "currency": currency,
                    "order_id": str(refund["order_id"]),
                    "reason": refund.get("note"),
                }
            ),
            revenue=-amount,
            currency=currency,
        )
    ]


def map_raw_event(raw_event) -> list[CanonicalEvent]:
    payload, topic = raw_event.payload, raw_event.topic
    if not payload.get("id"):
        raise MappingError(f"Shopify {topic} payload has no id")
    if topic in ("customers/create", "customers/update"):
        return _customer_event(topic, payload)
    if topic in ("orders/create", "orders/paid", "orders/cancelled"):
        return _order_event(topic, payload)
    if topic == "refunds/create":
        if not payload.get("order_id"):
            raise MappingError("Shopify refund has no order_id")
        return _refund_event(topic, payload)
    return []

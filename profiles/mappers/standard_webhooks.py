"""Standard Webhooks senders (Svix and others): the envelope {"type", "timestamp", "data"}.

The signing standard says nothing about `data`, so senders map into this documented shape:
  type        a canonical event type (see the contracts), or any other name (-> track.custom)
  timestamp   ISO 8601 with a timezone
  data        {"identifiers": {"email": "...", "user_id": "..."}, "traits": {...},
               "properties": {...}, "consent": {"email_marketing": true}, "revenue": 12.5, "currency": "EUR"}
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from consent.domain import PURPOSE_SLUGS
from profiles.contracts import DEFAULT_CONTRACTS
from profiles.domain import CanonicalEvent, ConsentObservation, IdentifierObservation, MappingError, clean_traits
from profiles.mappers.common import from_iso


def map_raw_event(raw_event) -> list[CanonicalEvent]:
    envelope = raw_event.payload
    data = envelope.get("data")
    if not isinstance(data, dict):
        raise MappingError("Standard Webhooks payload needs a 'data' object")
    event_type = str(envelope.get("type") or "")
    if not event_type:
        raise MappingError("Standard Webhooks payload needs a 'type'")
    identifiers = data.get("identifiers") or {}
    if not isinstance(identifiers, dict):
        raise MappingError("data.identifiers must be an object of {type: value}")
    consent = data.get("consent") or {}
    revenue = None
    if data.get("revenue") is not None:
        try:
            revenue = Decimal(str(data["revenue"]))
        except InvalidOperation as error:
            raise MappingError(f"data.revenue is not a number: {data['revenue']!r}") from error
    canonical = event_type if event_type in DEFAULT_CONTRACTS else "track.custom"
    return [
        CanonicalEvent(
            type=canonical,
            occurred_at=from_iso(envelope.get("timestamp"), field="timestamp"),
            identifiers=tuple(IdentifierObservation(str(kind), value) for kind, value in identifiers.items() if value),
            name=event_type,
            properties=data.get("properties") if isinstance(data.get("properties"), dict) else {},
            traits=clean_traits(data.get("traits") if isinstance(data.get("traits"), dict) else {}),
            consent=tuple(
                ConsentObservation(purpose, granted, evidence={"via": "standard_webhook"})
                for purpose, granted in sorted(consent.items())
                if purpose in PURPOSE_SLUGS and isinstance(granted, bool)
            ),
            revenue=revenue,
            currency=str(data.get("currency") or "").upper()[:3],
        )
    ]

"""A test input format: the payload already lists canonical events, so pipeline tests exercise
claiming, contracts, identity and writes without depending on one sender's payload shape."""

from decimal import Decimal

from django.utils.dateparse import parse_datetime

from profiles.domain import CanonicalEvent, ConsentObservation, IdentifierObservation, MappingError


def map_raw_event(raw_event):
    payload = raw_event.payload
    if "fail" in payload:
        raise MappingError(payload["fail"])
    if "crash" in payload:
        raise RuntimeError(payload["crash"])
    events = []
    for item in payload["events"]:
        events.append(
            CanonicalEvent(
                type=item.get("type"),
                occurred_at=parse_datetime(item["at"]),
                identifiers=tuple(
                    IdentifierObservation(type=t, value=v, is_verified=bool(item.get("verified_ids")))
                    for t, v in item.get("ids", [])
                ),
                properties=item.get("properties", {}),
                traits=item.get("traits", {}),
                verified_traits=frozenset(item.get("verified_traits", [])),
                consent=tuple(ConsentObservation(purpose=p, is_granted=g) for p, g in item.get("consent", [])),
                revenue=Decimal(item["revenue"]) if item.get("revenue") is not None else None,
                currency=item.get("currency", ""),
            )
        )
    return events

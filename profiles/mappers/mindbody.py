"""Mindbody webhooks (envelope: messageId, eventId, eventSchemaVersion,
eventInstanceOriginationDateTime, eventData) to canonical events.

Client ids are unique per site, so the identifier is "<siteId>:<clientId>".
- client.created / client.updated -> customer.* (email, mobile phone, consent flags)
- classRosterBooking.created -> booking.created; classRosterBooking.cancelled -> booking.cancelled
- classRosterBookingStatus.updated with signedInStatus SignedIn -> class.attended (a visit)
- appointmentBooking.created / .cancelled -> booking.created / booking.cancelled
- clientProfileMerger.created -> customer.merged carrying both client ids, so the two become one
  person here too
"""

from __future__ import annotations

from consent.domain import EMAIL_MARKETING, SMS_MARKETING
from profiles.domain import CanonicalEvent, ConsentObservation, IdentifierObservation, MappingError, clean_traits
from profiles.mappers.common import compact, from_iso


def _client_id(data: dict, key: str = "clientId") -> str | None:
    site, client = data.get("siteId"), data.get(key)
    if site in (None, "") or client in (None, ""):
        return None
    return f"{site}:{client}"


def _identifiers(data: dict, *, email_key: str, phone_key: str) -> tuple[IdentifierObservation, ...]:
    found = []
    client_id = _client_id(data)
    if client_id:
        found.append(IdentifierObservation("mindbody_client_id", client_id))
    if data.get(email_key):
        found.append(IdentifierObservation("email", data[email_key]))
    if data.get(phone_key):
        found.append(IdentifierObservation("phone", data[phone_key]))
    return tuple(found)


def _client(envelope: dict, data: dict, when) -> list[CanonicalEvent]:
    birth = data.get("birthDateTime")
    traits = clean_traits(
        {
            "first_name": data.get("firstName"),
            "last_name": data.get("lastName"),
            "email": data.get("email"),
            "phone": data.get("mobilePhone"),
            "city": data.get("city"),
            "postal_code": data.get("postalCode"),
            "country": data.get("country"),
            "birthday": birth[:10] if isinstance(birth, str) else None,
            "gender": data.get("gender"),
            "membership_status": data.get("status"),
        }
    )
    consent = []
    for flag, purpose in (("sendPromotionalEmails", EMAIL_MARKETING), ("sendPromotionalTexts", SMS_MARKETING)):
        if isinstance(data.get(flag), bool):
            consent.append(ConsentObservation(purpose, data[flag], evidence={flag: data[flag]}))
    return [
        CanonicalEvent(
            type="customer.created" if envelope["eventId"] == "client.created" else "customer.updated",
            occurred_at=when,
            identifiers=_identifiers(data, email_key="email", phone_key="mobilePhone"),
            name=envelope["eventId"],
            properties=compact({"customer_id": _client_id(data)}),
            traits=traits,
            consent=tuple(consent),
        )
    ]


def _class_properties(data: dict, booking_key: str) -> dict:
    return compact(
        {
            "booking_id": str(data[booking_key]) if data.get(booking_key) not in (None, "") else None,
            "class_id": str(data["classId"]) if data.get("classId") not in (None, "") else None,
            "class_name": data.get("className"),
            "starts_at": data.get("classStartDateTime") or data.get("classDateTime") or data.get("startDateTime"),
            "ends_at": data.get("classEndDateTime") or data.get("endDateTime"),
            "location": str(data["locationId"]) if data.get("locationId") not in (None, "") else None,
            "staff": data.get("staffName"),
            "site_id": str(data["siteId"]) if data.get("siteId") not in (None, "") else None,
        }
    )


def _booking(envelope: dict, data: dict, when, canonical: str, booking_key: str) -> list[CanonicalEvent]:
    properties = _class_properties(data, booking_key)
    if "booking_id" not in properties:
        raise MappingError(f"{envelope['eventId']} has no {booking_key}")
    if canonical == "booking.cancelled" and isinstance(data.get("isLateCancel"), bool):
        properties["late_cancel"] = data["isLateCancel"]
    if canonical == "booking.cancelled":
        properties.pop("ends_at", None)
        properties.pop("staff", None)
    if canonical == "class.attended":
        properties.pop("ends_at", None)
    return [
        CanonicalEvent(
            type=canonical,
            occurred_at=when,
            identifiers=_identifiers(data, email_key="clientEmail", phone_key="clientPhone"),
            name=envelope["eventId"],
            properties=properties,
            traits=clean_traits({"first_name": data.get("clientFirstName"), "last_name": data.get("clientLastName")}),
        )
    ]


def _merge(envelope: dict, data: dict, when) -> list[CanonicalEvent]:
    winner, loser = _client_id(data, "winnerClientId"), _client_id(data, "loserClientId")
    if not (winner and loser):
        raise MappingError("clientProfileMerger.created needs siteId, winnerClientId and loserClientId")
    return [
        CanonicalEvent(
            type="customer.merged",
            occurred_at=when,
            identifiers=(
                IdentifierObservation("mindbody_client_id", winner),
                IdentifierObservation("mindbody_client_id", loser),
            ),
            name=envelope["eventId"],
            properties={"winner_id": winner, "loser_id": loser},
        )
    ]


def map_raw_event(raw_event) -> list[CanonicalEvent]:
    envelope = raw_event.payload
    data = envelope.get("eventData")
    if not isinstance(data, dict):
        raise MappingError("Mindbody message has no eventData object")
    when = from_iso(envelope.get("eventInstanceOriginationDateTime"), field="eventInstanceOriginationDateTime")
    event_id = envelope.get("eventId")
    if event_id in ("client.created", "client.updated"):
        return _client(envelope, data, when)
    if event_id == "classRosterBooking.created":
        return _booking(envelope, data, when, "booking.created", "classRosterBookingId")
    if event_id == "classRosterBooking.cancelled":
        return _booking(envelope, data, when, "booking.cancelled", "classRosterBookingId")
    if event_id == "classRosterBookingStatus.updated":
        if data.get("signedInStatus") != "SignedIn":
            return []
        return _booking(envelope, data, when, "class.attended", "classRosterBookingId")
    if event_id == "appointmentBooking.created":
        return _booking(envelope, data, when, "booking.created", "appointmentId")
    if event_id == "appointmentBooking.cancelled":
        return _booking(envelope, data, when, "booking.cancelled", "appointmentId")
    if event_id == "clientProfileMerger.created":
        return _merge(envelope, data, when)
    return []

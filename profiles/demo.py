"""Demo population: what several sources would send about a few thousand (or a million) people.

Overlaps (the same person identified on the web and in the app), the same email written with
different case and spaces, phone numbers in national and international formats, typo'd email
domains (a different identity, as in real data), families sharing one email, shared devices, junk
placeholder values, and anonymous-only visitors. Deterministic for a seed; streamed in chunks.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

FIRST = [
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Linus",
    "Margaret",
    "Ken",
    "Radia",
    "Frances",
    "Tim",
    "Katherine",
    "Dennis",
    "Hedy",
    "John",
    "Sophie",
    "Yukihiro",
    "Anita",
    "Guido",
    "Shafi",
    "Leslie",
    "Donald",
    "Jean",
    "Mary",
]
LAST = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Torvalds",
    "Hamilton",
    "Thompson",
    "Perlman",
    "Allen",
    "Berners",
    "Johnson",
    "Ritchie",
    "Lamarr",
    "McCarthy",
    "Wilson",
    "Matsumoto",
    "Borg",
    "Rossum",
    "Goldwasser",
]
CITIES = [("London", "GB"), ("Manchester", "GB"), ("Dublin", "IE"), ("Paris", "FR"), ("Austin", "US"), ("Denver", "US")]
DOMAINS = ["gmail.com", "yahoo.com", "outlook.com", "icloud.com", "proton.me"]
TYPO = {
    "gmail.com": "gmial.com",
    "yahoo.com": "yaho.com",
    "outlook.com": "outlok.com",
    "icloud.com": "iclod.com",
    "proton.me": "protn.me",
}
CLASSES = ["Reformer Pilates", "Spin 45", "Vinyasa Flow", "HIIT Express", "Boxing Basics", "Barre"]
PRODUCTS = [
    ("sku-mat", "Yoga mat", 39.0),
    ("sku-bottle", "Bottle", 14.5),
    ("sku-pack10", "10-class pack", 120.0),
    ("sku-towel", "Towel", 9.0),
    ("sku-month", "Monthly membership", 89.0),
]
JUNK_EMAILS = ["test@test.com", "noreply@example.com"]


def _phone(rng: random.Random, index: int) -> tuple[str, str]:
    """The same US number in E.164 and in a national format."""
    digits = f"{(2000000 + index * 7919) % 10000000:07d}"
    return f"+1415{digits}", f"(415) {digits[:3]}-{digits[3:]}"


def people(count: int, seed: int) -> Iterator[dict]:
    rng = random.Random(seed)
    family_email = None
    for index in range(count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        domain = rng.choice(DOMAINS)
        email = f"{first}.{last}{index}@{domain}".lower()
        # About 4% share one family email with the previous person.
        if family_email and rng.random() < 0.04:
            email = family_email
        family_email = email
        city, country = rng.choice(CITIES)
        e164, national = _phone(rng, index)
        yield {
            "index": index,
            "user_id": f"member-{index:06d}",
            "first_name": first,
            "last_name": last,
            "email": email,
            "phone": e164,
            "phone_national": national,
            "city": city,
            "country": country,
            "devices": [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(rng.choice([1, 1, 2]))],
            "is_app_user": rng.random() < 0.55,
            "is_buyer": rng.random() < 0.6,
            "typo": rng.random() < 0.03,
            "junk": rng.random() < 0.01,
        }


def messages(count: int, *, seed: int = 7, now: datetime | None = None) -> Iterator[dict]:
    """Segment messages (as an SDK would send) about `count` people, oldest first per person."""
    rng = random.Random(seed + 1)
    now = now or datetime.now(UTC)
    shared_devices: list[str] = []
    for person in people(count, seed):
        start = now - timedelta(days=rng.randint(5, 700))

        def at(offset_hours: float, _start=start) -> str:
            return (_start + timedelta(hours=offset_hours)).isoformat()

        def message(kind: str, hours: float, **fields) -> dict:
            body = {
                "type": kind,
                "messageId": str(uuid.UUID(int=rng.getrandbits(128))),
                "timestamp": at(hours),
                "sentAt": at(hours),
                "receivedAt": at(hours),
            }
            body.update(fields)
            return body

        device = person["devices"][0]
        # Shared family tablets: a device reused by the next person now and then.
        if shared_devices and rng.random() < 0.03:
            device = rng.choice(shared_devices)
        shared_devices = (shared_devices + [device])[-50:]
        web_email = person["email"]
        if rng.random() < 0.3:
            web_email = f"  {web_email.upper()} "
        if person["typo"]:
            name, domain = person["email"].split("@")
            web_email = f"{name}@{TYPO.get(domain, domain)}"
        if person["junk"]:
            web_email = rng.choice(JUNK_EMAILS)
        # Anonymous browsing, then sign-up.
        for n in range(rng.randint(1, 4)):
            yield message(
                "page",
                n * 0.2,
                anonymousId=device,
                name="Timetable",
                properties={"path": "/timetable", "url": "https://studio.example/timetable"},
            )
        traits = {
            "email": web_email,
            "firstName": person["first_name"],
            "lastName": person["last_name"],
            "phone": person["phone_national"] if rng.random() < 0.5 else person["phone"],
            "address": {"city": person["city"], "country": person["country"]},
        }
        yield message(
            "identify",
            1,
            userId=person["user_id"],
            anonymousId=device,
            traits=traits,
            context={"consent": {"categoryPreferences": {"Marketing": rng.random() < 0.7, "Analytics": True}}},
        )
        if person["is_app_user"] and len(person["devices"]) > 1:
            yield message(
                "identify",
                30,
                userId=person["user_id"],
                anonymousId=person["devices"][1],
                traits={"email": person["email"], "phone": person["phone"]},
                context={"device": {"type": "ios"}},
            )
        hours = 2.0
        for _ in range(rng.randint(1, 8)):
            hours += rng.uniform(20, 200)
            klass = rng.choice(CLASSES)
            yield message(
                "track",
                hours,
                userId=person["user_id"],
                event="Class Booked",
                properties={"class_name": klass, "location": person["city"]},
            )
        if person["is_buyer"]:
            for n in range(rng.randint(1, 3)):
                sku, name, price = rng.choice(PRODUCTS)
                hours += rng.uniform(10, 300)
                yield message(
                    "track",
                    hours,
                    userId=person["user_id"],
                    event="Product Viewed",
                    properties={"product_id": sku, "name": name, "price": price, "currency": "GBP"},
                )
                yield message(
                    "track",
                    hours + 0.1,
                    userId=person["user_id"],
                    event="Order Completed",
                    properties={
                        "order_id": f"ord-{person['index']}-{n}",
                        "total": price,
                        "currency": "GBP",
                        "products": [{"product_id": sku, "name": name, "price": price}],
                    },
                )
    # Anonymous-only visitors who never sign up.
    for _ in range(max(count // 10, 1)):
        device = str(uuid.UUID(int=rng.getrandbits(128)))
        yield {
            "type": "page",
            "messageId": str(uuid.UUID(int=rng.getrandbits(128))),
            "anonymousId": device,
            "name": "Pricing",
            "properties": {"path": "/pricing"},
            "timestamp": (now - timedelta(days=rng.randint(1, 60))).isoformat(),
            "receivedAt": (now - timedelta(days=rng.randint(1, 60))).isoformat(),
        }


# -- webhook senders ---------------------------------------------------------------------------

SITE_ID = 5403


def _unix(moment: datetime) -> int:
    return int(moment.timestamp())


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def mindbody_messages(person: dict, rng: random.Random, start: datetime) -> Iterator[tuple[str, dict]]:
    """Envelopes shaped like Mindbody's webhooks: a client, bookings, sign-ins, and sometimes a
    duplicate client record that the studio later merges."""
    client_id = str(100000000 + person["index"])

    def envelope(event_id: str, when: datetime, data: dict) -> tuple[str, dict]:
        message_id = uuid.UUID(int=rng.getrandbits(128)).hex[:22]
        return event_id, {
            "messageId": message_id,
            "eventId": event_id,
            "eventSchemaVersion": 1,
            "eventInstanceOriginationDateTime": _iso(when),
            "eventData": {"siteId": SITE_ID, **data},
        }

    email = person["email"] if rng.random() > 0.2 else person["email"].title()
    client = {
        "clientId": client_id,
        "clientUniqueId": int(client_id),
        "creationDateTime": _iso(start),
        "status": rng.choice(["Active", "Non-Member", "Expired"]),
        "firstName": person["first_name"],
        "lastName": person["last_name"],
        "email": email,
        "mobilePhone": person["phone_national"],
        "city": person["city"],
        "country": person["country"],
        "sendPromotionalEmails": rng.random() < 0.6,
        "sendPromotionalTexts": rng.random() < 0.3,
        "birthDateTime": f"19{rng.randint(60, 99)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T00:00:00Z",
    }
    yield envelope("client.created", start, client)
    if rng.random() < 0.02:  # a duplicate record made at the front desk, merged later
        duplicate_id = str(900000000 + person["index"])
        yield envelope(
            "client.created",
            start + timedelta(days=3),
            {
                **client,
                "clientId": duplicate_id,
                "clientUniqueId": int(duplicate_id),
                "email": "",
                "mobilePhone": person["phone"],
            },
        )
        yield envelope(
            "clientProfileMerger.created",
            start + timedelta(days=30),
            {
                "winnerClientId": client_id,
                "loserClientId": duplicate_id,
                "mergeDateTime": _iso(start + timedelta(days=30)),
            },
        )
    when = start
    for booking in range(rng.randint(1, 10)):
        when += timedelta(hours=rng.uniform(24, 240))
        booking_id = person["index"] * 100 + booking
        klass = {
            "locationId": 1,
            "classId": rng.randint(100, 400),
            "classRosterBookingId": booking_id,
            "classStartDateTime": _iso(when + timedelta(days=2)),
            "classEndDateTime": _iso(when + timedelta(days=2, hours=1)),
            "staffName": rng.choice(["Jimmy Martin", "Ana Ruiz", "Sam Okafor"]),
            "clientId": client_id,
            "clientUniqueId": int(client_id),
            "clientFirstName": person["first_name"],
            "clientLastName": person["last_name"],
            "clientEmail": email,
            "className": rng.choice(CLASSES),
        }
        yield envelope("classRosterBooking.created", when, {**klass, "signedInStatus": "Reserved"})
        if rng.random() < 0.15:
            yield envelope(
                "classRosterBooking.cancelled",
                when + timedelta(hours=20),
                {**klass, "isLateCancel": rng.random() < 0.3},
            )
        else:
            yield envelope(
                "classRosterBookingStatus.updated",
                when + timedelta(days=2),
                {**klass, "classDateTime": klass["classStartDateTime"], "signedInStatus": "SignedIn"},
            )


def stripe_messages(person: dict, rng: random.Random, start: datetime) -> Iterator[tuple[str, dict]]:
    """Events shaped like Stripe's: a customer, then payment intents and the odd refund."""
    customer_id = f"cus_{uuid.UUID(int=rng.getrandbits(128)).hex[:14]}"
    email = person["email"].upper() if rng.random() < 0.1 else person["email"]

    def event(kind: str, when: datetime, obj: dict) -> tuple[str, dict]:
        return kind, {
            "id": f"evt_{uuid.UUID(int=rng.getrandbits(128)).hex[:24]}",
            "object": "event",
            "api_version": "2024-06-20",
            "created": _unix(when),
            "livemode": False,
            "pending_webhooks": 1,
            "type": kind,
            "data": {"object": obj},
        }

    yield event(
        "customer.created",
        start,
        {
            "id": customer_id,
            "object": "customer",
            "email": email,
            "name": f"{person['first_name']} {person['last_name']}",
            "phone": person["phone"] if rng.random() < 0.5 else None,
            "created": _unix(start),
            "address": {"city": person["city"], "country": person["country"], "line1": None, "postal_code": None},
        },
    )
    when = start
    for _ in range(rng.randint(1, 6)):
        when += timedelta(days=rng.uniform(5, 60))
        amount = rng.choice([1500, 8900, 12000, 2500])
        intent = f"pi_{uuid.UUID(int=rng.getrandbits(128)).hex[:24]}"
        yield event(
            "payment_intent.succeeded",
            when,
            {
                "id": intent,
                "object": "payment_intent",
                "amount": amount,
                "amount_received": amount,
                "currency": "gbp",
                "customer": customer_id,
                "receipt_email": email,
                "description": "Membership",
                "status": "succeeded",
                "created": _unix(when),
            },
        )
        if rng.random() < 0.05:
            yield event(
                "charge.refunded",
                when + timedelta(days=2),
                {
                    "id": f"ch_{intent[3:]}",
                    "object": "charge",
                    "amount": amount,
                    "amount_refunded": amount,
                    "currency": "gbp",
                    "customer": customer_id,
                    "payment_intent": intent,
                    "receipt_email": email,
                    "billing_details": {"email": None, "name": None, "phone": None, "address": None},
                    "refunds": {"object": "list", "data": [{"id": f"re_{intent[3:]}", "amount": amount}]},
                },
            )


def shopify_messages(person: dict, rng: random.Random, start: datetime) -> Iterator[tuple[str, dict]]:
    """Payloads shaped like Shopify's customers/create and orders/paid webhooks."""
    customer_id = 7_000_000_000_000 + person["index"]
    consent_state = rng.choice(["subscribed", "not_subscribed", "unsubscribed"])
    customer = {
        "id": customer_id,
        "email": person["email"],
        "first_name": person["first_name"],
        "last_name": person["last_name"],
        "phone": person["phone"] if rng.random() < 0.4 else None,
        "verified_email": rng.random() < 0.8,
        "created_at": start.isoformat(),
        "updated_at": start.isoformat(),
        "email_marketing_consent": {
            "state": consent_state,
            "opt_in_level": "single_opt_in",
            "consent_updated_at": start.isoformat(),
        },
        "default_address": {"city": person["city"], "country_code": person["country"]},
    }
    yield "customers/create", customer
    when = start
    for n in range(rng.randint(1, 3)):
        when += timedelta(days=rng.uniform(3, 90))
        sku, name, price = rng.choice(PRODUCTS)
        yield (
            "orders/paid",
            {
                "id": 5_000_000_000_000 + person["index"] * 10 + n,
                "email": person["email"],
                "currency": "GBP",
                "total_price": f"{price:.2f}",
                "subtotal_price": f"{price:.2f}",
                "total_tax": "0.00",
                "financial_status": "paid",
                "order_number": 1000 + person["index"] * 10 + n,
                "created_at": when.isoformat(),
                "processed_at": when.isoformat(),
                "updated_at": when.isoformat(),
                "customer": customer,
                "buyer_accepts_marketing": consent_state == "subscribed",
                "line_items": [
                    {
                        "product_id": 1000 + PRODUCTS.index((sku, name, price)),
                        "sku": sku,
                        "title": name,
                        "quantity": 1,
                        "price": f"{price:.2f}",
                    }
                ],
            },
        )


@dataclass(frozen=True)
class GeneratedEvent:
    kind: str  # source kind
    external_id: str
    topic: str
    payload: dict
    headers: dict


def all_sources(count: int, *, seed: int = 7, now: datetime | None = None) -> Iterator[GeneratedEvent]:
    """What four sources send about `count` people: the web/app SDK for everyone who signs up
    online, Mindbody for ~85% (bookings), Stripe for ~68% of those (payments), Shopify for ~30%."""
    now = now or datetime.now(UTC)
    for message in messages(count, seed=seed, now=now):
        yield GeneratedEvent("tracking", message["messageId"], message["type"], message, {})
    rng = random.Random(seed + 2)
    for person in people(count, seed):
        start = now - timedelta(days=rng.randint(30, 700))
        if rng.random() < 0.85:
            for topic, payload in mindbody_messages(person, rng, start):
                yield GeneratedEvent("mindbody", payload["messageId"], topic, payload, {})
            if rng.random() < 0.68:
                for topic, payload in stripe_messages(person, rng, start):
                    yield GeneratedEvent("stripe", payload["id"], topic, payload, {})
        if rng.random() < 0.3:
            for topic, payload in shopify_messages(person, rng, start):
                event_id = str(uuid.UUID(int=rng.getrandbits(128)))
                headers = {
                    "X-Shopify-Topic": topic,
                    "X-Shopify-Event-Id": event_id,
                    "X-Shopify-Shop-Domain": "studio-demo.myshopify.com",
                    "X-Shopify-API-Version": "2025-01",
                }
                yield GeneratedEvent("shopify", event_id, topic, payload, headers)

"""Demo population: SDK messages for a few thousand people with the mess real data has.

Overlaps (the same person identified on the web and in the app), the same email written with
different case and spaces, phone numbers in national and international formats, typo'd email
domains (a different identity, as in real data), families sharing one email, shared devices, junk
placeholder values, and anonymous-only visitors. Deterministic for a seed; streamed in chunks.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
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

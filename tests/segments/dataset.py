"""A small fixed dataset of profiles with traits of mixed JSON types, events, consent and identifiers."""

import itertools
from datetime import UTC, datetime, timedelta

from identity.models import Identifier, IdentifierType
from profiles.models import Event, Profile, RawEvent, Source

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
_ids = itertools.count(1)


def hours_ago(hours: float) -> datetime:
    return NOW - timedelta(hours=hours)


def granted(is_granted: bool) -> dict:
    return {"is_granted": is_granted, "captured_at": "2026-05-01T00:00:00+00:00", "source_id": 1}


# name: (traits, consent, identifier types, merge_confidence, status, [(type, hours ago, properties)])
PROFILES = {
    "ana": (
        {
            "plan": "gold",
            "age": 30,
            "tags": ["vip", "yoga"],
            "city": "Berlin",
            "signup": "2026-05-25",
            "score": 4.5,
            "is_member": True,
            "nick": None,
        },
        {"email_marketing": granted(True)},
        ["email"],
        1.0,
        "active",
        [("product.viewed", 5, {"sku": "A1", "price": 20}), ("order.completed", 4, {"total": 50, "coupon": "SPRING"})],
    ),
    "ben": (
        {
            "plan": "silver",
            "age": "30",
            "tags": "vip",
            "city": "berlin-mitte",
            "signup": "2026-01-10T09:00:00+02:00",
            "is_member": 1,
        },
        {"email_marketing": granted(False)},
        ["phone"],
        0.6,
        "active",
        [
            ("product.viewed", 10, {"sku": "B2", "price": 5.5}),
            ("order.completed", 7, {"total": 20}),
            ("order.completed", 24 * 40, {"total": 100}),
        ],
    ),
    "cara": ({}, {}, [], 0.9, "active", []),
    "dan": (
        {"plan": "gold", "age": 45.5, "signup": "2026-02-30", "first name": "Dan", "a.b": 1, "is_member": False},
        {"sms_marketing": granted(True)},
        ["email", "stripe_customer"],
        0.95,
        "active",
        [
            ("product.viewed", 1, {"sku": "A1"}),
            ("order.completed", 30, {"total": 10}),
            ("order.completed", 50, {"total": 20.5}),
            ("order.completed", 70, {"total": "30"}),
        ],
    ),
    "eve": (
        {"plan": "gold", "age": 30},
        {"email_marketing": granted(True)},
        ["email"],
        1.0,
        "merged",
        [("order.completed", 2, {"total": 500})],
    ),
    "fay": (
        {
            "plan": "Gold",
            "age": True,
            "tags": [1, 2, "3", ["vip"]],
            "signup": "2026-05-31T23:00:00Z",
            "city": "MÜNSTER",
            "score": 4,
        },
        {"sms_marketing": granted(True), "email_marketing": granted(True)},
        ["email", "phone"],
        0.5,
        "active",
        [
            ("page.viewed", 3, {"path": "/pricing", "tags": ["a", "b"]}),
            ("product.viewed", 30, {"sku": "C3"}),
            ("order.completed", 29, {"total": 15}),
        ],
    ),
    "gus": (
        {"plan": ["gold"], "age": -2, "signup": "not a date", "score": "4.5", "nick": "g_%"},
        {"email_marketing": {"is_granted": "yes"}},
        [],
        0.7,
        "active",
        [("product.viewed", 24 * 10, {"sku": "A1", "price": 20}), ("order.completed", 24 * 10 - 1, {"total": 99.5})],
    ),
    "hal": (
        {"plan": "bronze", "age": 0, "signup": "2025-12-31T23:59:59-01:00", "tags": [], "nick": "100%"},
        {},
        ["stripe_customer"],
        1.0,
        "active",
        [
            ("product.viewed", 2, {"sku": "A1"}),
            ("product.viewed", 26, {"sku": "A1"}),
            ("order.completed", 25, {"total": 0}),
        ],
    ),
    "ivy": (
        {"plan": "gold", "age": 18, "signup": "2026-05-01T10:00", "city": "Berlin"},
        {"email_marketing": granted(True)},
        ["email"],
        0.8,
        "active",
        [("product.viewed", 3, {"sku": "A1", "price": "20"}), ("product.viewed", 2.5, {"sku": "B2"})],
    ),
    "jon": (
        {"age": 1e3, "score": 4.5, "signup": "2024-02-29"},
        {},
        [],
        0.3,
        "active",
        [("order.completed", 1, {"total": 40}), ("order.completed", 1, {"total": 60})],
    ),
}


def build_dataset() -> dict[str, int]:
    """Creates the profiles; returns their ids by name."""
    source = Source.objects.create(name="Segments test", slug=f"segments-test-{next(_ids)}", kind="csv")
    types = {}
    for slug in ("email", "phone", "stripe_customer"):
        types[slug], _ = IdentifierType.objects.get_or_create(slug=slug, defaults={"name": slug})
    ids = {}
    for name, (traits, consent, identifiers, confidence, status, events) in PROFILES.items():
        profile = Profile.objects.create(
            traits=traits, consent=consent, merge_confidence=confidence, status=status, created_at=NOW, updated_at=NOW
        )
        ids[name] = profile.pk
        for slug in identifiers:
            Identifier.objects.create(
                identifier_type=types[slug],
                value=f"{name}-{slug}",
                lookup_hash=f"{name}-{slug}-{next(_ids)}",
                profile=profile,
                first_seen_at=NOW,
                last_seen_at=NOW,
            )
        for event_type, ago, properties in events:
            raw = RawEvent.objects.create(
                source=source, external_id=f"raw-{next(_ids)}", received_at=NOW, payload={}, status="processed"
            )
            Event.objects.create(
                profile=profile,
                source=source,
                raw_event=raw,
                type=event_type,
                occurred_at=hours_ago(ago),
                received_at=NOW,
                properties=properties,
            )
    return ids

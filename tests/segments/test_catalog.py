"""The builder's menus, read from the data in one bounded query (PostgreSQL and SQLite)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from identity.models import IdentifierType
from profiles.models import EventContract, Profile, SchemaDrift
from profiles.processing import raw_events_process
from segments import catalog
from segments.catalog import EventInfo, PropertyInfo, TraitInfo, builder_catalog, event_catalog, trait_catalog
from segments.services import segment_create
from tests.profiles.processing.conftest import event

pytestmark = pytest.mark.django_db


def profile(traits, *, minutes_ago=0, status=Profile.ACTIVE, seen=True):
    now = timezone.now()
    return Profile.objects.create(
        traits=traits,
        status=status,
        last_seen_at=now - timedelta(minutes=minutes_ago) if seen else None,
        created_at=now,
        updated_at=now,
    )


def test_traits_with_mixed_kinds_dates_and_counts():
    profile({"city": "Paris", "age": 41, "vip": True, "signup": "2025-05-01", "tags": ["a"], "gone": None})
    profile({"city": "London", "age": "forty", "vip": False, "score": 2.5, "address": {"zip": "1"}})
    profile({"age": 30, "signup": "2025-06-01T10:00:00+00:00"})
    profile({"city": 75})
    profile({"secret": "x"}, status=Profile.MERGED)  # not an active profile: not offered
    assert trait_catalog() == [
        TraitInfo("address", ("personal",), 1),  # personal: sealed, whole values only
        TraitInfo("age", ("number", "string"), 3),
        TraitInfo("city", ("number", "string"), 3),
        TraitInfo("score", ("number",), 1),
        TraitInfo("signup", ("date",), 2),
        TraitInfo("tags", ("array",), 1),
        TraitInfo("vip", ("boolean",), 2),
    ]


def test_traits_come_from_the_most_recently_seen_profiles_only():
    profile({"old": 1}, minutes_ago=60)
    profile({"never_seen": 1}, seen=False)
    profile({"recent": "a"}, minutes_ago=1)
    profile({"newest": True}, minutes_ago=0)
    assert [trait.key for trait in trait_catalog(sample_size=2)] == ["newest", "recent"]
    assert [trait.key for trait in trait_catalog(sample_size=3)] == ["newest", "old", "recent"]
    assert [trait.key for trait in trait_catalog()] == ["never_seen", "newest", "old", "recent"]


def test_non_object_traits_and_no_profiles_give_nothing():
    assert trait_catalog() == []
    profile([])
    profile({})
    assert trait_catalog() == []


def test_the_key_list_is_bounded(monkeypatch):
    monkeypatch.setattr(catalog, "MAX_TRAIT_KEYS", 2)
    profile({"a": 1, "b": 1, "c": 1})
    profile({"b": 1, "c": 1})
    profile({"c": 1})
    assert [trait.key for trait in trait_catalog()] == ["b", "c"]


def test_events_from_active_contracts_with_declared_and_drift_properties(canonical_source):
    EventContract.objects.all().delete()
    EventContract.objects.create(
        event_type="order.completed",
        description="An order was paid.",
        required={"order_id": "string", "total": "number"},
        optional={"coupon": "string"},
    )
    EventContract.objects.create(event_type="page.viewed", description="A page view.", optional={"url": "string"})
    EventContract.objects.create(event_type="old.thing", is_active=False)
    now = timezone.now()
    for event_type, name in [
        ("order.completed", "gift_wrap"),
        ("order.completed", "coupon"),  # declared since: listed once, with its type
        ("page.viewed", "referrer"),
        ("old.thing", "x"),  # inactive contract: not offered
    ]:
        SchemaDrift.objects.create(
            source=canonical_source, event_type=event_type, property_name=name, first_seen_at=now, last_seen_at=now
        )
    assert event_catalog() == [
        EventInfo(
            "order.completed",
            "An order was paid.",
            (
                PropertyInfo("coupon", "string"),
                PropertyInfo("order_id", "string"),
                PropertyInfo("total", "number"),
                PropertyInfo("gift_wrap", "undeclared"),
            ),
        ),
        EventInfo(
            "page.viewed", "A page view.", (PropertyInfo("url", "string"), PropertyInfo("referrer", "undeclared"))
        ),
    ]


def test_drift_recorded_by_processing_shows_up(send):
    send(
        event(
            "order.completed",
            ids=[("email", "a@example.com")],
            properties={
                "order_id": "o1",
                "total": 12,
                "currency": "EUR",
                "gift_wrap": True,
            },
        )
    )
    raw_events_process()
    order = next(info for info in event_catalog() if info.type == "order.completed")
    assert PropertyInfo("gift_wrap", "undeclared") in order.properties
    assert PropertyInfo("total", "number") in order.properties


def test_without_active_contracts_the_defaults_are_offered():
    EventContract.objects.update(is_active=False)
    types = [info.type for info in event_catalog()]
    assert "order.completed" in types and "payment.succeeded" in types


def test_builder_catalog_lists_purposes_identifier_types_and_other_segments(send):
    send(event("page.viewed", ids=[("email", "p@example.com")], traits={"city": "Paris"}))
    raw_events_process()
    segment_create(
        slug="paris", name="Paris", definition={"trait": "city", "op": "eq", "value": "Paris"}, note="n", author="u"
    )
    segment_create(slug="fans", name="Fans", definition={"segment": "paris"}, note="n", author="u")
    menus = builder_catalog(exclude_segment="fans")
    assert menus.segments == [("paris", "Paris")]
    assert [slug for slug, _ in menus.purposes] == [
        "email_marketing",
        "sms_marketing",
        "advertising",
        "analytics",
        "personalisation",
    ]
    assert [slug for slug, _ in menus.identifier_types] == list(
        IdentifierType.objects.order_by("slug").values_list("slug", flat=True)
    )
    assert "email" in [slug for slug, _ in menus.identifier_types]
    assert menus.traits == [TraitInfo("city", ("string",), 1)]
    assert menus.trait_kinds() == {"city": ("string",)}
    assert menus.property_kinds()[("order.completed", "total")] == "number"

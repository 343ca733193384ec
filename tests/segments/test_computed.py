"""Computed traits: values computed by the database, materialised per profile, usable in segments."""

import threading
from datetime import UTC, datetime

import pytest
from django.db import connection, connections, transaction

from profiles.processing import raw_events_process
from segments.computed import ComputedTraitInvalid, computed_trait_create, computed_trait_refresh
from segments.models import ComputedTraitValue
from segments.selectors import segment_audience
from segments.services import SegmentDefinitionInvalid, segment_create
from tests.identity.test_services import profile_of
from tests.profiles.processing.conftest import event

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def order(email, at, total, channel):
    return event(
        "track.custom", at=at, ids=[("email", email)], properties={"total": total, "channel": channel, "kind": "order"}
    )


@pytest.fixture
def shoppers(send):
    send(order("ada@example.com", "2026-05-20T10:00:00+00:00", 30, "web"))
    send(order("ada@example.com", "2026-05-25T10:00:00+00:00", 12.5, "app"))
    send(order("ada@example.com", "2026-05-30T10:00:00+00:00", 20, "app"))
    send(order("bob@example.com", "2026-01-10T10:00:00+00:00", 99, "store"))  # outside 90 days
    send(order("bob@example.com", "2026-05-31T10:00:00+00:00", "n/a", "web"))  # a total that is not a number
    send(event("page.viewed", at="2026-05-01T10:00:00+00:00", ids=[("email", "cy@example.com")]))
    raw_events_process()
    return {name: profile_of("email", f"{name}@example.com").pk for name in ("ada", "bob", "cy")}


def values(trait) -> dict:
    return dict(ComputedTraitValue.objects.filter(trait=trait).values_list("profile_id", "value"))


def make(key, kind, prop="", days=90):
    return computed_trait_create(
        key=key,
        name=key,
        kind=kind,
        event_type="track.custom",
        property=prop,
        where=[{"property": "kind", "op": "eq", "value": "order"}],
        within_last_days=days,
    )


def test_each_kind_is_computed_by_the_database(shoppers):
    ada, bob, cy = shoppers["ada"], shoppers["bob"], shoppers["cy"]
    expected = {
        make("orders_90d", "count"): {ada: 3, bob: 1, cy: 0},
        make("spend_90d", "sum", "total"): {ada: 62.5, bob: 0, cy: 0},
        make("first_channel", "first", "channel", days=None): {ada: "web", bob: "store"},
        make("last_channel", "last", "channel", days=None): {ada: "app", bob: "web"},
        make("top_channel", "most_frequent", "channel", days=None): {ada: "app", bob: "store"},
    }
    for trait, wanted in expected.items():
        computed_trait_refresh(trait=trait, now=NOW)
        assert values(trait) == wanted, trait.key
        # Idempotent: the same values again, no duplicates.
        computed_trait_refresh(trait=trait, now=NOW)
        assert values(trait) == wanted, trait.key


def test_refresh_of_some_profiles_only(shoppers):
    trait = make("orders_90d", "count")
    computed_trait_refresh(trait=trait, now=NOW)
    ComputedTraitValue.objects.filter(trait=trait).update(value=42)
    computed_trait_refresh(trait=trait, now=NOW, profile_ids=[shoppers["ada"]])
    assert values(trait) == {shoppers["ada"]: 3, shoppers["bob"]: 42, shoppers["cy"]: 42}


def test_segments_use_computed_traits(shoppers):
    computed_trait_refresh(trait=make("orders_90d", "count"), now=NOW)
    computed_trait_refresh(trait=make("top_channel", "most_frequent", "channel", days=None), now=NOW)

    def audience(definition):
        return set(segment_audience(definition=definition, now=NOW).values_list("id", flat=True))

    assert audience({"computed": "orders_90d", "op": "gte", "value": 2}) == {shoppers["ada"]}
    assert audience({"computed": "orders_90d", "op": "lt", "value": 1}) == {shoppers["cy"]}
    # A missing value is "not equal", like a missing trait.
    assert audience({"computed": "top_channel", "op": "neq", "value": "app"}) == {shoppers["bob"], shoppers["cy"]}
    assert audience({"computed": "top_channel", "op": "exists", "value": False}) == {shoppers["cy"]}
    segment = segment_create(
        slug="loyal", name="Loyal", definition={"computed": "orders_90d", "op": "gte", "value": 3}, note="n", author="u"
    )
    assert segment.published_version.number == 1


def test_unknown_computed_traits_and_bad_definitions_are_refused(shoppers):
    with pytest.raises(SegmentDefinitionInvalid) as problem:
        segment_create(
            slug="x", name="X", definition={"computed": "orders_9d", "op": "gt", "value": 1}, note="n", author="u"
        )
    assert problem.value.errors[0].path == "computed"
    make("orders_90d", "count")
    with pytest.raises(SegmentDefinitionInvalid, match="Did you mean 'orders_90d'"):
        segment_create(
            slug="x", name="X", definition={"computed": "orders_9d", "op": "gt", "value": 1}, note="n", author="u"
        )
    with pytest.raises(ComputedTraitInvalid, match="needs the event property"):
        computed_trait_create(key="s", name="s", kind="sum", event_type="track.custom")
    with pytest.raises(ComputedTraitInvalid, match="Unknown event type"):
        computed_trait_create(key="c", name="c", kind="count", event_type="order.complete")


def test_api_creates_and_lists_computed_traits(api):
    client = api("marketer")
    body = {
        "key": "orders_90d",
        "name": "Orders",
        "kind": "count",
        "event_type": "order.completed",
        "within_last_days": 90,
    }
    assert client.post("/api/v1/computed-traits/", body, format="json").status_code == 201
    assert [row["key"] for row in client.get("/api/v1/computed-traits/").json()] == ["orders_90d"]
    bad = client.post("/api/v1/computed-traits/", {**body, "key": "x", "kind": "sum"}, format="json")
    assert bad.status_code == 400 and bad.json()["definition"][0]["path"] == "property"
    assert api("guest_services").get("/api/v1/computed-traits/").status_code == 403


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL: two connections writing at once")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # like the suite's other live tests
def test_two_refreshes_of_one_trait_at_once_both_succeed(shoppers):
    """A second refresh started while the first is uncommitted waits for it instead of inserting rows
    that collide with the first one's on the unique (trait, profile) index."""
    trait = make("orders_90d", "count")
    inside, errors = threading.Event(), []

    def first():
        try:
            with transaction.atomic():
                computed_trait_refresh(trait=trait, now=NOW)
                inside.set()
                threading.Event().wait(0.5)  # still uncommitted while the second starts
        except Exception as error:  # noqa: BLE001
            errors.append(error)
        finally:
            connections.close_all()

    def second():
        inside.wait(5)
        try:
            computed_trait_refresh(trait=trait, now=NOW)
        except Exception as error:  # noqa: BLE001
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert errors == []
    assert values(trait) == {shoppers["ada"]: 3, shoppers["bob"]: 1, shoppers["cy"]: 0}

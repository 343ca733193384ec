"""Lift against the holdout: counts in the database, the statistics, the page and the API."""

import itertools
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from activations import lift
from activations.lift import lift_for_sync, lift_for_trigger
from activations.models import Trigger, TriggerSend
from profiles.models import Event, Profile, RawEvent
from segments.models import SegmentMembership
from segments.services import segment_create

pytestmark = pytest.mark.django_db

_ids = itertools.count(1)
ENTERED = timezone.now().replace(microsecond=0) - timedelta(days=20)


@pytest.fixture
def world(canonical_source, webhook_destination, make_sync):
    """Profiles, memberships, sends and events written straight with the ORM (fast, exact counts)."""

    class World:
        def __init__(self):
            self.raw = RawEvent.objects.create(
                source=canonical_source, external_id=f"lift-{next(_ids)}", received_at=ENTERED, payload={}
            )
            self.sequence = itertools.count()
            self.destination = webhook_destination("http://127.0.0.1:9/hook")

        def profiles(self, count):
            return Profile.objects.bulk_create([Profile(created_at=ENTERED, updated_at=ENTERED) for _ in range(count)])

        def events(self, profiles, *, after=timedelta(days=1), event_type="order.completed", start=ENTERED, **props):
            Event.objects.bulk_create(
                [
                    Event(
                        profile=profile,
                        source=canonical_source,
                        raw_event=self.raw,
                        sequence=next(self.sequence),
                        type=event_type,
                        occurred_at=start + after,
                        received_at=start + after,
                        properties={"order_id": f"o-{profile.pk}", "total": 10, "currency": "EUR", **props},
                    )
                    for profile in profiles
                ]
            )

        def sync(self, holdout_percent=10):
            segment = segment_create(
                slug=f"lift-{next(_ids)}",
                name="Lift audience",
                definition={"all": [{"trait": "plan", "op": "eq", "value": "gold"}]},
                note="test",
                author="test",
                holdout_percent=holdout_percent,
            )
            return make_sync(segment, self.destination)

        def members(self, sync, *, treatment, control, entered_at=ENTERED):
            """(treatment profiles, control profiles) entered into the sync's segment."""
            groups = self.profiles(treatment), self.profiles(control)
            SegmentMembership.objects.bulk_create(
                SegmentMembership(
                    segment=sync.segment,
                    profile=profile,
                    version=sync.segment.published_version,
                    entered_at=entered_at,
                    is_holdout=is_holdout,
                )
                for is_holdout, group in zip((False, True), groups, strict=True)
                for profile in group
            )
            return groups

    return World()


def test_statistics_match_published_and_hand_computed_values():
    # Newcombe (1998), example (a): 56/70 vs 48/80 -> 0.0524 to 0.3339.
    low, high = lift.newcombe_interval(56, 70, 48, 80)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)
    values = lift.lift_from_counts(treatment_n=200, treatment_conversions=40, control_n=200, control_conversions=20)
    assert values["absolute_lift"] == pytest.approx(0.10)
    # Wilson 40/200: (0.15032, 0.25716); 20/200: (0.06579, 0.14973).
    # low = 0.1 - sqrt((0.2 - 0.15032)^2 + (0.14973 - 0.1)^2), high = 0.1 + sqrt((0.25716 - 0.2)^2 + (0.1 - 0.06579)^2)
    assert values["absolute_ci_low"] == pytest.approx(0.03003, abs=1e-4)
    assert values["absolute_ci_high"] == pytest.approx(0.16987, abs=1e-4)
    # RR = 2, SE(log RR) = sqrt(1/40 - 1/200 + 1/20 - 1/200) = 0.25495 -> exp(log 2 ± 1.96·SE) - 1.
    assert values["relative_lift"] == pytest.approx(1.0)
    assert values["relative_ci_low"] == pytest.approx(0.2134, abs=1e-3)
    assert values["relative_ci_high"] == pytest.approx(2.2964, abs=1e-3)
    assert values["verdict"] == lift.SIGNIFICANT_BETTER
    worse = lift.lift_from_counts(treatment_n=200, treatment_conversions=20, control_n=200, control_conversions=40)
    assert worse["verdict"] == lift.SIGNIFICANT_WORSE
    no_control_conversions = lift.lift_from_counts(
        treatment_n=50, treatment_conversions=5, control_n=50, control_conversions=0
    )
    assert no_control_conversions["relative_lift"] is None and no_control_conversions["relative_ci_low"] is None
    nothing = lift.lift_from_counts(treatment_n=100, treatment_conversions=0, control_n=100, control_conversions=0)
    assert nothing["verdict"] == lift.NOT_ENOUGH_DATA


def test_sync_lift_counts_in_the_database(world, django_assert_max_num_queries):
    sync = world.sync()
    treatment, control = world.members(sync, treatment=200, control=200)
    world.events(treatment[:40])
    world.events(control[:20])
    world.events(treatment[:40])  # a second order of the same people: still 40 people converted

    with django_assert_max_num_queries(4):
        result = lift_for_sync(sync, event_type="order.completed", window_days=7)

    assert (result.treatment_n, result.treatment_conversions) == (200, 40)
    assert (result.control_n, result.control_conversions) == (200, 20)
    assert result.treatment_rate == pytest.approx(0.2) and result.control_rate == pytest.approx(0.1)
    assert result.absolute_lift == pytest.approx(0.10)
    assert result.absolute_ci_low == pytest.approx(0.03003, abs=1e-4)
    assert result.absolute_ci_high == pytest.approx(0.16987, abs=1e-4)
    assert result.relative_lift == pytest.approx(1.0)
    assert result.verdict == "significant: treatment converts better"
    assert sync.segment.slug in result.explanation and "within 7 days" in result.explanation


def test_small_equal_groups_are_not_significant_yet_and_tiny_ones_not_enough_data(world):
    sync = world.sync()
    treatment, control = world.members(sync, treatment=100, control=100)
    world.events(treatment[:10])
    world.events(control[:9])
    result = lift_for_sync(sync, event_type="order.completed")
    assert result.verdict == "not significant yet"
    assert result.absolute_ci_low < 0 < result.absolute_ci_high

    tiny = world.sync()
    treatment, control = world.members(tiny, treatment=20, control=5)
    world.events(treatment[:10])
    result = lift_for_sync(tiny, event_type="order.completed")
    assert (result.treatment_n, result.control_n) == (20, 5)
    assert result.verdict == "not enough data"


def test_window_boundaries_and_entry_period(world):
    sync = world.sync()
    treatment, control = world.members(sync, treatment=6, control=2)
    world.events(treatment[:1], after=timedelta(days=7))  # on the boundary: counts
    world.events(treatment[1:2], after=timedelta(days=7, seconds=1))  # after the window
    world.events(treatment[2:3], after=-timedelta(hours=1))  # before entering
    world.events(treatment[3:4], after=timedelta(0))  # at the entry instant: not after it
    world.events(treatment[4:5], event_type="order.placed")  # another type
    world.events(control[:1], after=timedelta(days=2))

    result = lift_for_sync(sync, event_type="order.completed", window_days=7)
    assert (result.treatment_conversions, result.control_conversions) == (1, 1)
    wider = lift_for_sync(sync, event_type="order.completed", window_days=8)
    assert wider.treatment_conversions == 2

    later = ENTERED + timedelta(days=1)
    assert lift_for_sync(sync, event_type="order.completed", since=later).treatment_n == 0
    window = lift_for_sync(sync, event_type="order.completed", since=ENTERED, until=later)
    assert (window.treatment_n, window.control_n) == (6, 2)


def test_property_filter(world):
    sync = world.sync()
    treatment, control = world.members(sync, treatment=4, control=2)
    world.events(treatment[:1], total=80, coupon="SPRING")
    world.events(treatment[1:2], total=20)
    world.events(control[:1], total=60)

    def conversions(where):
        result = lift_for_sync(sync, event_type="order.completed", where=where)
        return result.treatment_conversions, result.control_conversions

    assert conversions([{"property": "total", "op": "gte", "value": 50}]) == (1, 1)
    assert conversions([{"property": "coupon", "op": "exists"}]) == (1, 0)
    assert conversions([{"property": "coupon", "op": "not_exists"}]) == (1, 1)
    assert conversions([{"property": "coupon", "op": "contains", "value": "spring"}]) == (1, 0)
    assert conversions([{"property": "total", "op": "in", "value": [20, 60]}]) == (1, 1)


def test_bad_input_is_refused_with_a_clear_message(world):
    no_holdout = world.sync(holdout_percent=0)
    with pytest.raises(ValueError, match="no holdout"):
        lift_for_sync(no_holdout, event_type="order.completed")
    sync = world.sync()
    with pytest.raises(ValueError, match="Unknown event type"):
        lift_for_sync(sync, event_type="order.teleported")
    for days in (0, 91):
        with pytest.raises(ValueError, match="window_days"):
            lift_for_sync(sync, event_type="order.completed", window_days=days)
    with pytest.raises(ValueError, match="op must be one of"):
        lift_for_sync(sync, event_type="order.completed", where=[{"property": "total", "op": "like"}])
    trigger = Trigger.objects.create(
        name="No holdout", slug="no-holdout", kind=Trigger.EVENT, destination=world.destination, event_type="x"
    )
    with pytest.raises(ValueError, match="no holdout"):
        lift_for_trigger(trigger, event_type="order.completed")


def _trigger_with_sends(world, *, sent, held_back, other_skips=0):
    trigger = Trigger.objects.create(
        name="Cart reminder",
        slug=f"cart-{next(_ids)}",
        kind=Trigger.EVENT,
        destination=world.destination,
        event_type="order.placed",
        holdout_percent=50,
        template={"type": "reminder", "to": "{email}"},
    )
    groups = world.profiles(sent), world.profiles(held_back), world.profiles(other_skips)
    rows = [(TriggerSend.SENT, "", profile) for profile in groups[0]]
    rows += [(TriggerSend.SKIPPED, "holdout", profile) for profile in groups[1]]
    rows += [(TriggerSend.SKIPPED, "consent", profile) for profile in groups[2]]
    TriggerSend.objects.bulk_create(
        TriggerSend(
            trigger=trigger,
            profile_id=profile.pk,
            channel="webhook",
            idempotency_key=f"k-{profile.pk}",
            status=status,
            skip_reason=reason,
            created_at=ENTERED,
        )
        for status, reason, profile in rows
    )
    return trigger, groups


def test_trigger_lift_sent_vs_held_back(world):
    trigger, (sent, held_back, consent_skipped) = _trigger_with_sends(world, sent=200, held_back=200, other_skips=50)
    world.events(sent[:40], after=timedelta(hours=2))
    world.events(held_back[:20], after=timedelta(days=3))
    world.events(held_back[20:30], after=timedelta(days=9))  # after the window
    world.events(consent_skipped)  # neither group

    result = lift_for_trigger(trigger, event_type="order.completed", window_days=7)
    assert (result.treatment_n, result.treatment_conversions) == (200, 40)
    assert (result.control_n, result.control_conversions) == (200, 20)
    assert result.verdict == lift.SIGNIFICANT_BETTER
    assert trigger.slug in result.explanation


def test_page_for_marketer_and_refused_for_guest_services(world, make_user, client):
    sync = world.sync()
    treatment, control = world.members(sync, treatment=200, control=200)
    world.events(treatment[:40])
    world.events(control[:20])
    url = reverse("activations:sync_lift", args=[sync.slug])

    client.force_login(make_user("guest_services"))
    assert client.get(url).status_code == 403

    client.force_login(make_user("marketer"))
    detail = client.get(reverse("activations:sync_detail", args=[sync.slug]))
    assert url in detail.content.decode()
    form_only = client.get(url)
    assert form_only.status_code == 200 and 'data-testid="lift-result"' not in form_only.content.decode()

    page = client.get(url, {"event_type": "order.completed", "window_days": 7})
    html = page.content.decode()
    assert page.status_code == 200
    assert "significant: treatment converts better" in html
    assert "+10.0 pp" in html and "+3.0 pp to +17.0 pp" in html
    assert "20.0%" in html and "10.0%" in html

    assert client.get(url, {"event_type": "order.completed", "window_days": 120}).status_code == 400

    trigger, _ = _trigger_with_sends(world, sent=5, held_back=5)
    trigger_url = reverse("activations:trigger_lift", args=[trigger.slug])
    assert trigger_url in client.get(reverse("activations:trigger_detail", args=[trigger.slug])).content.decode()
    trigger_page = client.get(trigger_url, {"event_type": "order.completed"})
    assert trigger_page.status_code == 200 and "not enough data" in trigger_page.content.decode()

    no_holdout = world.sync(holdout_percent=0)
    refused = client.get(reverse("activations:sync_lift", args=[no_holdout.slug]), {"event_type": "order.completed"})
    assert refused.status_code == 200 and "has no holdout" in refused.content.decode()


def test_api(world, api):
    sync = world.sync()
    treatment, control = world.members(sync, treatment=200, control=200)
    world.events(treatment[:40])
    world.events(control[:20])
    marketer = api("marketer")
    url = f"/api/v1/syncs/{sync.slug}/lift/"

    response = marketer.get(url, {"event_type": "order.completed", "window_days": 7})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["treatment_n"], body["treatment_conversions"], body["control_n"], body["control_conversions"]) == (
        200,
        40,
        200,
        20,
    )
    assert body["absolute_lift"] == pytest.approx(0.1)
    assert body["verdict"] == "significant: treatment converts better"
    assert "Newcombe" in body["absolute_method"]

    assert set(marketer.get(url).json()) == {"event_type"}
    assert set(marketer.get(url, {"event_type": "order.completed", "window_days": 0}).json()) == {"window_days"}
    assert set(marketer.get(url, {"event_type": "nope"}).json()) == {"event_type"}
    bad_where = marketer.get(url, {"event_type": "order.completed", "where": '[{"property": "total", "op": "gt"}]'})
    assert set(bad_where.json()) == {"where"}
    assert marketer.get(url, {"event_type": "order.completed", "since": "2024-02-30"}).status_code == 400
    filtered = marketer.get(
        url, {"event_type": "order.completed", "where": '[{"property": "total", "op": "gte", "value": 50}]'}
    )
    assert filtered.json()["treatment_conversions"] == 0

    no_holdout = world.sync(holdout_percent=0)
    refused = marketer.get(f"/api/v1/syncs/{no_holdout.slug}/lift/", {"event_type": "order.completed"})
    assert refused.status_code == 400 and "no holdout" in refused.json()["detail"]

    assert api("guest_services").get(url, {"event_type": "order.completed"}).status_code == 403

    trigger, _ = _trigger_with_sends(world, sent=40, held_back=40)
    answer = marketer.get(f"/api/v1/triggers/{trigger.slug}/lift/", {"event_type": "order.completed"})
    assert answer.status_code == 200 and answer.json()["verdict"] == "not enough data"

"""Membership rows: batch refresh, real-time re-evaluation after processing, holdout."""

from datetime import timedelta

import pytest
from django.utils import timezone

from profiles.processing import raw_events_process
from segments.membership import (
    holdout_bucket,
    profiles_reevaluate,
    segment_membership_refresh,
    segment_memberships_refresh_all,
)
from segments.models import SegmentMembership, SegmentRefresh
from segments.services import segment_create, segment_version_create
from tests.identity.test_services import profile_of
from tests.profiles.processing.conftest import event

pytestmark = pytest.mark.django_db
PARIS = {"trait": "city", "op": "eq", "value": "Paris"}


def members(segment) -> set[int]:
    return set(
        SegmentMembership.objects.filter(segment=segment, exited_at__isnull=True).values_list("profile_id", flat=True)
    )


@pytest.fixture
def city_people(send):
    for n, city in enumerate(["Paris", "Paris", "London"]):
        send(event("page.viewed", ids=[("email", f"p{n}@example.com")], traits={"city": city}))
    raw_events_process()
    return [profile_of("email", f"p{n}@example.com") for n in range(3)]


def test_refresh_enters_and_exits_with_the_deciding_version_and_is_idempotent(city_people, send):
    segment = segment_create(slug="paris", name="Paris", definition=PARIS, note="v1", author="u")
    first = segment_membership_refresh(segment=segment)
    assert (first.entered, first.exited, first.members) == (2, 0, 2)
    assert members(segment) == {city_people[0].pk, city_people[1].pk}
    again = segment_membership_refresh(segment=segment)
    assert (again.entered, again.exited, again.members) == (0, 0, 2)

    # p1 moves to London: exits; the row keeps when and which version decided.
    send(
        event(
            "page.viewed", at="2026-02-01T10:00:00+00:00", ids=[("email", "p1@example.com")], traits={"city": "London"}
        )
    )
    raw_events_process()
    result = segment_membership_refresh(segment=segment)
    assert (result.entered, result.exited) == (0, 1)
    stay = SegmentMembership.objects.get(segment=segment, profile=city_people[1])
    assert stay.exited_at is not None and stay.version == segment.published_version

    # A new version decides new entries.
    version, _ = segment_version_create(
        segment=segment, definition={"trait": "city", "op": "eq", "value": "London"}, note="v2", author="u"
    )
    result = segment_membership_refresh(segment=segment)
    assert (result.entered, result.exited) == (2, 1)
    assert set(
        SegmentMembership.objects.filter(segment=segment, exited_at__isnull=True).values_list("version", flat=True)
    ) == {version.pk}
    assert SegmentRefresh.objects.filter(segment=segment).count() == 4


def test_time_windows_expire_people_in_the_batch(send):
    recent = (timezone.now() - timedelta(days=2)).isoformat()
    send(event("page.viewed", at=recent, ids=[("email", "a@example.com")]))
    raw_events_process()
    segment = segment_create(
        slug="active", name="Active", definition={"event": "page.viewed", "within_last_days": 7}, note="v1", author="u"
    )
    segment_membership_refresh(segment=segment)
    assert len(members(segment)) == 1
    segment_memberships_refresh_all(now=timezone.now() + timedelta(days=10))
    assert members(segment) == set()


def test_holdout_is_deterministic_and_close_to_the_percentage(send):
    for n in range(200):
        send(event("page.viewed", ids=[("user_id", f"u{n}")], traits={"plan": "gold"}))
    raw_events_process()
    segment = segment_create(
        slug="gold",
        name="Gold",
        definition={"trait": "plan", "op": "eq", "value": "gold"},
        note="v1",
        author="u",
        holdout_percent=20,
    )
    segment_membership_refresh(segment=segment)
    rows = list(SegmentMembership.objects.filter(segment=segment).values_list("profile_id", "is_holdout"))
    assert all(is_holdout == (holdout_bucket(profile_id=pid, segment_id=segment.pk) < 20) for pid, is_holdout in rows)
    share = sum(is_holdout for _, is_holdout in rows) / len(rows)
    assert 0.1 <= share <= 0.3


def test_real_time_reevaluation_touches_only_dependent_segments(city_people, send):
    paris = segment_create(slug="paris", name="Paris", definition=PARIS, note="v1", author="u")
    buyers = segment_create(
        slug="buyers", name="Buyers", definition={"event": "order.completed"}, note="v1", author="u"
    )
    segment_membership_refresh(segment=paris)
    segment_membership_refresh(segment=buyers)
    london = city_people[2]
    send(
        event(
            "page.viewed", at="2026-03-01T10:00:00+00:00", ids=[("email", "p2@example.com")], traits={"city": "Paris"}
        )
    )
    raw_events_process()
    # Only "paris" reads the city trait; the event type does not matter to "buyers".
    changed = profiles_reevaluate(profile_ids=[london.pk], event_types=["page.viewed"], trait_keys=["city"])
    assert changed == 1 and london.pk in members(paris)
    assert profiles_reevaluate(profile_ids=[london.pk], event_types=["page.viewed"], trait_keys=[]) == 0


def test_processing_nudges_membership_on_commit(city_people, send, django_capture_on_commit_callbacks):
    paris = segment_create(slug="paris", name="Paris", definition=PARIS, note="v1", author="u")
    segment_membership_refresh(segment=paris)
    send(
        event(
            "page.viewed", at="2026-03-01T10:00:00+00:00", ids=[("email", "p2@example.com")], traits={"city": "Paris"}
        )
    )
    with django_capture_on_commit_callbacks(execute=True):
        raw_events_process()
    # The test settings run django-q2 synchronously: the nudge has re-evaluated p2 already.
    assert city_people[2].pk in members(paris)


def test_list_and_page_show_members_last_computed_and_growth(client, make_user, city_people):
    from django.urls import reverse

    segment = segment_create(slug="paris", name="Paris", definition=PARIS, note="v1", author="u")
    segment_membership_refresh(segment=segment)
    client.force_login(make_user("marketer"))
    listing = client.get(reverse("segments:segment_list")).content.decode()
    assert "<td>2</td>" in listing and "not yet" not in listing
    page = client.get(reverse("segments:segment_detail", args=["paris"])).content.decode()
    assert "Membership over time" in page and "+2" in page


def test_publishing_a_version_refreshes_its_members_right_after_commit(city_people, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        paris = segment_create(slug="paris", name="Paris", definition=PARIS, note="v1", author="u")
    # The test settings run django-q2 synchronously: the refresh queued on commit has run.
    assert members(paris) == {city_people[0].pk, city_people[1].pk}
    with django_capture_on_commit_callbacks(execute=True):
        segment_version_create(
            segment=paris, definition={"trait": "city", "op": "eq", "value": "London"}, note="v2", author="u"
        )
    assert members(paris) == {city_people[2].pk}  # not the previous version's audience

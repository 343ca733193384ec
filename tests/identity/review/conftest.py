from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.utils import timezone

from identity.models import IdentityLink
from identity.services import profiles_link
from profiles.models import Profile
from profiles.processing import raw_events_process
from profiles.sources import source_create
from tests.identity.test_services import profile_of
from tests.profiles.processing.conftest import event


@dataclass
class Queue:
    old_conflict: IdentityLink  # user_id u2 beside s@example.com (held by u1), canonical source, months old
    recent_conflict: IdentityLink  # user_id u4 beside t@example.com (held by u3), booking source, 3 days old
    pending: IdentityLink  # Ada's email profile ~ Ada's phone profile (booking), 0.72, created now
    weak: IdentityLink  # Grace's email ~ Grace's phone, 0.3, created now
    active: IdentityLink  # u1 with s@example.com: decided long ago, never in the queue
    active_booking: IdentityLink  # u3 with t@example.com
    booking_slug: str


def link_between(a, b) -> IdentityLink:
    ends = sorted([a, b])
    return IdentityLink.objects.get(from_identifier_id=ends[0], to_identifier_id=ends[1])


def propose(first: Profile, second: Profile, confidence: float) -> IdentityLink:
    outcome = profiles_link(
        profile_a_id=first.pk,
        profile_b_id=second.pk,
        kind=IdentityLink.PROBABILISTIC,
        rule="probabilistic",
        confidence=confidence,
        evidence={
            "match_run_id": 7,
            "fields": {
                "first_name": {"level": "exact", "weight": 4.25},
                "birth_date": {"level": "missing", "weight": 0},
            },
        },
        activate=False,
        actor="rule:probabilistic",
    )
    assert outcome.status == "queued"
    return IdentityLink.objects.get(pk=outcome.link_id)


@pytest.fixture
def booking(canonical_source):
    source, _ = source_create(name="Booking", kind="csv", priority=50)  # csv reads canonical events here
    return source


@pytest.fixture
def queue(send, booking) -> Queue:
    three_days_ago = (timezone.now() - timedelta(days=3)).isoformat()
    send(event("page.viewed", ids=[("user_id", "u1"), ("email", "s@example.com")], traits={"first_name": "Sam"}))
    send(event("page.viewed", ids=[("user_id", "u2"), ("email", "s@example.com")]))
    send(event("page.viewed", at=three_days_ago, ids=[("user_id", "u3"), ("email", "t@example.com")]), source=booking)
    send(event("page.viewed", at=three_days_ago, ids=[("user_id", "u4"), ("email", "t@example.com")]), source=booking)
    send(event("page.viewed", ids=[("email", "ada@example.com")], traits={"first_name": "Ada", "city": "London"}))
    send(event("page.viewed", ids=[("phone", "+14155550100")], traits={"first_name": "Ada"}), source=booking)
    send(event("page.viewed", ids=[("email", "grace@example.com")], traits={"first_name": "Grace"}))
    send(event("page.viewed", ids=[("phone", "+14155550111")], traits={"first_name": "G."}))
    raw_events_process()
    ids = {
        value: profile_of(kind, value).identifiers.get(identifier_type__slug=kind).pk
        for kind, value in [
            ("user_id", "u1"),
            ("user_id", "u2"),
            ("user_id", "u3"),
            ("user_id", "u4"),
            ("email", "s@example.com"),
            ("email", "t@example.com"),
        ]
    }
    return Queue(
        old_conflict=link_between(ids["s@example.com"], ids["u2"]),
        recent_conflict=link_between(ids["t@example.com"], ids["u4"]),
        pending=propose(profile_of("email", "ada@example.com"), profile_of("phone", "+14155550100"), 0.72),
        weak=propose(profile_of("email", "grace@example.com"), profile_of("phone", "+14155550111"), 0.3),
        active=link_between(ids["s@example.com"], ids["u1"]),
        active_booking=link_between(ids["t@example.com"], ids["u3"]),
        booking_slug=booking.slug,
    )

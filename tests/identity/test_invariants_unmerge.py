"""Random sequences of ingests, merges, review decisions and unmerges: after every step the
identity invariants hold, and a merge undone at once gives both profiles back exactly."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as statistic
from hypothesis import strategies as st

from identity.models import IdentityLink, Merge
from identity.services import IdentityActionError, link_approve, link_reject, merge_unmerge, profiles_link
from profiles.models import Event, Profile, RawEvent
from profiles.processing import raw_events_process
from profiles.services.recompute import profile_recompute
from tests.identity.invariants import identity_invariant_violations, identity_tables_reset
from tests.identity.test_services import snapshot
from tests.profiles.processing.conftest import event

POOLS = {
    "email": [f"p{i}@example.com" for i in range(5)],
    "phone": ["+14155550110", "+14155550111", "+14155550112"],
    "user_id": ["u1", "u2", "u3"],
    "anonymous_id": ["d1", "d2", "d3"],
    "stripe_customer_id": ["cus_1", "cus_2"],
}
identifier = st.sampled_from(sorted(POOLS)).flatmap(lambda t: st.tuples(st.just(t), st.sampled_from(POOLS[t])))
observation = st.tuples(st.lists(identifier, min_size=1, max_size=3), st.sampled_from(["red", "blue", None]))
step = st.one_of(
    st.tuples(st.just("ingest"), st.lists(observation, min_size=1, max_size=4)),
    st.tuples(st.just("unmerge"), st.integers(0, 20)),
    st.tuples(st.just("approve"), st.integers(0, 20)),
    st.tuples(st.just("reject"), st.integers(0, 20)),
    st.tuples(st.just("merge_then_unmerge"), st.integers(0, 20), st.integers(0, 20)),
)


def _pick(rows, index):
    return rows[index % len(rows)] if rows else None


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=8))
def test_invariants_hold_through_merges_reviews_and_unmerges(send, steps):
    identity_tables_reset()
    clock = itertools.count()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    sent = 0
    for action, *args in steps:
        if action == "ingest":
            for ids, colour in args[0]:
                # Unique but out of order, as senders deliver them.
                at = (start + timedelta(minutes=(next(clock) * 37) % 997)).isoformat()
                traits = {"colour": colour} if colour else {}
                consent = [("email_marketing", colour == "red")] if colour else []
                send(event("page.viewed", at=at, ids=ids, traits=traits, consent=consent, revenue="1.50"))
                sent += 1
            raw_events_process(batch_size=2)
            # The materialised traits equal the ones rebuilt from rows (what an unmerge relies on).
            for profile in Profile.objects.filter(status=Profile.ACTIVE):
                rebuilt = profile_recompute(profile_id=profile.pk)
                assert rebuilt.traits == profile.traits
                assert rebuilt.lifetime_revenue == profile.lifetime_revenue
        elif action == "unmerge":
            merge = _pick(list(Merge.objects.filter(unmerged_at__isnull=True).order_by("id")), args[0])
            if merge is not None:
                try:
                    merge_unmerge(merge_id=merge.pk, actor="user:test")
                    statistic("unmerged an ingest merge")
                except IdentityActionError:
                    pass  # e.g. one side no longer holds an identifier: refused, nothing changed
        elif action in ("approve", "reject"):
            links = list(
                IdentityLink.objects.filter(status__in=[IdentityLink.PENDING_REVIEW, IdentityLink.BLOCKED]).order_by(
                    "id"
                )
            )
            link = _pick(links, args[0])
            if link is not None:
                statistic(f"{action} a {link.status} link")
                (link_approve if action == "approve" else link_reject)(link_id=link.pk, actor="user:test")
        else:
            active = list(
                Profile.objects.filter(status=Profile.ACTIVE, identifiers__isnull=False).distinct().order_by("id")
            )
            a, b = _pick(active, args[0]), _pick(active, args[1])
            if a is None or a.pk == b.pk:
                continue
            before = {a.pk: snapshot(a), b.pk: snapshot(b)}
            outcome = profiles_link(
                profile_a_id=a.pk,
                profile_b_id=b.pk,
                kind=IdentityLink.MANUAL,
                rule="manual",
                confidence=0.5,
                evidence={"test": True},
                activate=True,
                actor="user:test",
            )
            assert identity_invariant_violations() == []
            statistic(f"manual link: {outcome.status}")
            if outcome.status == "merged":
                merge_unmerge(merge_id=outcome.merge_id, actor="user:test")
                for profile in (a, b):
                    assert snapshot(profile) == before[profile.pk]
        assert identity_invariant_violations() == []

    processed = RawEvent.objects.filter(status=RawEvent.PROCESSED).count()
    quarantined = RawEvent.objects.filter(status=RawEvent.QUARANTINED).count()
    assert processed + quarantined == sent
    assert Event.objects.count() == processed
    assert Event.objects.values("raw_event").distinct().count() == processed

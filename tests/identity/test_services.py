"""Merges, unmerges and review decisions on the real database."""

import pytest

from consent.models import ConsentRecord
from identity.models import Identifier, IdentityLink, Merge, Unmerge
from identity.selectors import identifier_find
from identity.services import IdentityActionError, link_approve, link_reject, merge_unmerge, profiles_link
from profiles.models import Event, Profile, TraitValue
from profiles.processing import raw_events_process
from profiles.selectors import profile_resolve
from tests.identity.invariants import identity_invariant_violations
from tests.profiles.processing.conftest import event

pytestmark = pytest.mark.django_db


def profile_of(type_slug, value) -> Profile:
    return Profile.objects.get(pk=identifier_find(type_slug=type_slug, raw_value=value).profile_id)


def snapshot(profile: Profile) -> dict:
    profile.refresh_from_db()
    return {
        "identifiers": set(Identifier.objects.filter(profile=profile).values_list("id", flat=True)),
        "events": set(Event.objects.filter(profile=profile).values_list("id", flat=True)),
        "trait_values": set(TraitValue.objects.filter(profile=profile).values_list("id", flat=True)),
        "consent": set(ConsentRecord.objects.filter(profile=profile).values_list("id", flat=True)),
        "traits": profile.traits,
        "consent_summary": {k: v["is_granted"] for k, v in profile.consent.items()},
        "revenue": profile.lifetime_revenue,
        "status": profile.status,
    }


@pytest.fixture
def two_people(send):
    """Ada (email + device) and Bob (phone + user id), each with events, traits and consent."""
    send(
        event(
            "page.viewed",
            at="2026-01-01T10:00:00+00:00",
            ids=[("email", "ada@example.com"), ("anonymous_id", "dev-ada")],
            traits={"first_name": "Ada", "city": "London"},
            consent=[("email_marketing", True)],
        )
    )
    send(event("track.custom", at="2026-01-02T10:00:00+00:00", ids=[("email", "ada@example.com")], revenue="30"))
    send(
        event(
            "page.viewed",
            at="2026-01-03T10:00:00+00:00",
            ids=[("phone", "+14155550100"), ("user_id", "bob-1")],
            traits={"first_name": "Bob", "city": "Paris"},
        )
    )
    send(event("track.custom", at="2026-01-04T10:00:00+00:00", ids=[("user_id", "bob-1")], revenue="12.50"))
    raw_events_process()
    return profile_of("email", "ada@example.com"), profile_of("user_id", "bob-1")


def test_unmerge_restores_both_profiles_exactly(send, two_people):
    ada, bob = two_people
    before = {ada.pk: snapshot(ada), bob.pk: snapshot(bob)}
    # The wrong merge: a shared kiosk form put Bob's phone beside Ada's email.
    send(
        event(
            "profile.identified",
            at="2026-01-05T10:00:00+00:00",
            ids=[("email", "ada@example.com"), ("phone", "+14155550100")],
        )
    )
    raw_events_process()
    merge = Merge.objects.get()
    assert {merge.survivor_id, merge.absorbed_id} == {ada.pk, bob.pk}
    survivor = Profile.objects.get(pk=merge.survivor_id)
    assert survivor.lifetime_revenue == 42.5
    form_event = Event.objects.get(type="profile.identified")

    unmerge = merge_unmerge(merge_id=merge.pk, actor="user:gina", reason="two people at one kiosk")

    assert identity_invariant_violations() == []
    merge.refresh_from_db()
    assert merge.unmerged_at is not None
    assert unmerge.restored_id == merge.absorbed_id and unmerge.remaining_id == merge.survivor_id
    assert [link["id"] for link in unmerge.rejected_links] == [merge.link_id]
    assert IdentityLink.objects.get(pk=merge.link_id).status == IdentityLink.REJECTED
    for profile in (ada, bob):
        after = snapshot(profile)
        expected = before[profile.pk]
        # The form event arrived with Ada's email (highest priority): it stays with Ada.
        if profile.pk == ada.pk:
            expected = {**expected, "events": expected["events"] | {form_event.pk}}
        assert after == expected
    # Both ids answer again.
    assert profile_resolve(profile_id=ada.pk).pk == ada.pk
    assert profile_resolve(profile_id=bob.pk).pk == bob.pk


def test_unmerge_keeps_what_arrived_after_the_merge_with_its_identifier(send, two_people):
    ada, bob = two_people
    send(
        event(
            "page.viewed",
            at="2026-01-05T10:00:00+00:00",
            ids=[("email", "ada@example.com"), ("phone", "+14155550100")],
        )
    )
    raw_events_process()
    # After the merge: Bob buys again (his user id) and gets a new device; Ada sets a trait.
    send(event("track.custom", at="2026-01-06T10:00:00+00:00", ids=[("user_id", "bob-1")], revenue="5"))
    send(event("page.viewed", at="2026-01-06T11:00:00+00:00", ids=[("user_id", "bob-1"), ("anonymous_id", "dev-bob")]))
    send(
        event(
            "page.viewed", at="2026-01-07T10:00:00+00:00", ids=[("email", "ada@example.com")], traits={"city": "Rome"}
        )
    )
    raw_events_process()
    merge_unmerge(merge_id=Merge.objects.get().pk, actor="user:gina")

    assert identity_invariant_violations() == []
    ada.refresh_from_db()
    bob.refresh_from_db()
    assert ada.clear_traits == {"first_name": "Ada", "city": "Rome"}
    assert bob.clear_traits == {"first_name": "Bob", "city": "Paris"}
    assert bob.lifetime_revenue == 17.5 and ada.lifetime_revenue == 30
    assert profile_of("anonymous_id", "dev-bob").pk == bob.pk
    assert ada.consent["email_marketing"]["is_granted"] is True and bob.consent == {}


def test_unmerged_pair_is_not_merged_again_from_same_evidence_and_new_evidence_goes_to_review(send, two_people):
    ada, bob = two_people
    send(event("page.viewed", ids=[("email", "ada@example.com"), ("phone", "+14155550100")]))
    raw_events_process()
    merge_unmerge(merge_id=Merge.objects.get().pk, actor="user:gina")

    # The same pair observed again (a new event): not merged, queued for a person.
    send(event("page.viewed", ids=[("email", "ada@example.com"), ("phone", "+14155550100")]))
    # A different pair joining the same two people: also queued, not merged.
    send(event("page.viewed", ids=[("email", "ada@example.com"), ("user_id", "bob-1")]))
    raw_events_process()

    assert Merge.objects.count() == 1
    assert Profile.objects.filter(pk__in=[ada.pk, bob.pk], status=Profile.ACTIVE).count() == 2
    pending = IdentityLink.objects.filter(status=IdentityLink.PENDING_REVIEW)
    assert pending.count() == 2
    assert identity_invariant_violations() == []

    # A reviewer decides they are one person after all: the merge happens, with the reviewer as actor.
    merge = link_approve(link_id=pending.order_by("id").first().pk, actor="user:gina", note="same person, checked ID")
    assert merge.actor == "user:gina" and merge.unmerged_at is None
    assert Profile.objects.get(pk=merge.absorbed_id).status == Profile.MERGED
    assert identity_invariant_violations() == []


def test_reject_keeps_profiles_apart_and_cannot_reject_an_active_link(send, two_people):
    ada, bob = two_people
    outcome = profiles_link(
        profile_a_id=ada.pk,
        profile_b_id=bob.pk,
        kind=IdentityLink.PROBABILISTIC,
        rule="probabilistic",
        confidence=0.9,
        evidence={"score": 7.1},
        activate=False,
        actor="rule:probabilistic",
    )
    assert outcome.status == "queued"
    link = link_reject(link_id=outcome.link_id, actor="user:gina", note="different birthdays")
    assert link.status == IdentityLink.REJECTED and link.reviewed_by == "user:gina"
    again = profiles_link(
        profile_a_id=ada.pk,
        profile_b_id=bob.pk,
        kind=IdentityLink.PROBABILISTIC,
        rule="probabilistic",
        confidence=0.999,
        evidence={"score": 12},
        activate=True,
        actor="rule:probabilistic",
    )
    assert again.status == "skipped_rejected"
    assert Merge.objects.count() == 0
    with pytest.raises(IdentityActionError, match="not waiting for review"):
        link_approve(link_id=outcome.link_id, actor="user:gina")


def test_probabilistic_link_above_threshold_merges_with_its_confidence(two_people):
    ada, bob = two_people
    outcome = profiles_link(
        profile_a_id=bob.pk,
        profile_b_id=ada.pk,
        kind=IdentityLink.PROBABILISTIC,
        rule="probabilistic",
        confidence=0.97,
        evidence={"score": 11},
        activate=True,
        actor="rule:probabilistic",
    )
    assert outcome.status == "merged"
    merge = Merge.objects.get(pk=outcome.merge_id)
    assert (merge.survivor_id, merge.absorbed_id) == (min(ada.pk, bob.pk), max(ada.pk, bob.pk))
    survivor = Profile.objects.get(pk=merge.survivor_id)
    assert survivor.merge_confidence == 0.97
    assert merge.confidence == 0.97 and merge.actor == "rule:probabilistic"
    # Undo restores full confidence on both sides.
    merge_unmerge(merge_id=merge.pk, actor="user:gina")
    assert set(Profile.objects.filter(pk__in=[ada.pk, bob.pk]).values_list("merge_confidence", flat=True)) == {1.0}
    assert identity_invariant_violations() == []


def test_limit_conflict_is_queued_as_blocked_and_approval_merges(send):
    send(event("page.viewed", ids=[("user_id", "u-1"), ("email", "x@example.com")]))
    send(event("page.viewed", ids=[("user_id", "u-2"), ("phone", "+14155550199")]))
    raw_events_process()
    first, second = profile_of("user_id", "u-1"), profile_of("user_id", "u-2")
    outcome = profiles_link(
        profile_a_id=first.pk,
        profile_b_id=second.pk,
        kind=IdentityLink.PROBABILISTIC,
        rule="probabilistic",
        confidence=0.99,
        evidence={},
        activate=True,
        actor="rule:probabilistic",
    )
    assert outcome.status == "blocked"
    link = IdentityLink.objects.get(pk=outcome.link_id)
    assert "user_id" in link.reason and link.status == IdentityLink.BLOCKED
    merge = link_approve(link_id=link.pk, actor="user:gina", note="one account was a duplicate")
    assert merge is not None
    assert identity_invariant_violations() == []


def test_chained_merges_unmerge_the_middle_one(send):
    """A into B, then B into C: undoing A-into-B gives A back and leaves B inside C."""
    send(event("page.viewed", at="2026-01-01T10:00:00+00:00", ids=[("email", "a@example.com")]))
    send(event("page.viewed", at="2026-01-01T10:00:00+00:00", ids=[("phone", "+14155550101")]))
    send(event("page.viewed", at="2026-01-01T10:00:00+00:00", ids=[("user_id", "c-1")]))
    raw_events_process()
    a, b, c = profile_of("email", "a@example.com"), profile_of("phone", "+14155550101"), profile_of("user_id", "c-1")
    send(
        event(
            "page.viewed", at="2026-01-02T10:00:00+00:00", ids=[("email", "a@example.com"), ("phone", "+14155550101")]
        )
    )
    raw_events_process()
    send(event("page.viewed", at="2026-01-03T10:00:00+00:00", ids=[("phone", "+14155550101"), ("user_id", "c-1")]))
    raw_events_process()
    assert Profile.objects.filter(status=Profile.ACTIVE).count() == 1
    first_merge = Merge.objects.order_by("id").first()
    assert {first_merge.survivor_id, first_merge.absorbed_id} == {a.pk, b.pk}

    merge_unmerge(merge_id=first_merge.pk, actor="user:gina")

    assert identity_invariant_violations() == []
    assert Profile.objects.filter(status=Profile.ACTIVE).count() == 2
    assert profile_of("phone", "+14155550101") == profile_of("user_id", "c-1")
    restored = Profile.objects.get(pk=first_merge.absorbed_id)
    assert restored.status == Profile.ACTIVE
    holder_of_email = profile_of("email", "a@example.com")
    assert holder_of_email.pk != profile_of("user_id", "c-1").pk
    # Every old id redirects to the side that now holds what it brought.
    for profile in (a, b, c):
        assert profile_resolve(profile_id=profile.pk).status == Profile.ACTIVE


def test_unmerge_twice_is_refused_with_a_reason(send, two_people):
    send(event("page.viewed", ids=[("email", "ada@example.com"), ("phone", "+14155550100")]))
    raw_events_process()
    merge = Merge.objects.get()
    merge_unmerge(merge_id=merge.pk, actor="user:gina")
    with pytest.raises(IdentityActionError, match="already undone"):
        merge_unmerge(merge_id=merge.pk, actor="user:gina")
    assert Unmerge.objects.count() == 1


def test_traits_rebuilt_from_rows_decide_as_the_materialised_ones(send):
    """A value seen again only re-dates its row; a late older value must not win on a rebuild."""
    from profiles.services.recompute import profile_recompute

    ids = [("email", "ada@example.com")]
    send(event("page.viewed", at="2026-01-01T10:00:00+00:00", ids=ids, traits={"city": "Rome"}))
    raw_events_process()
    send(event("page.viewed", at="2026-01-03T10:00:00+00:00", ids=ids, traits={"city": "Rome"}))
    raw_events_process()
    send(event("page.viewed", at="2026-01-02T10:00:00+00:00", ids=ids, traits={"city": "Paris"}))
    raw_events_process()
    profile = profile_of("email", "ada@example.com")
    assert profile.traits == {"city": "Rome"}
    assert TraitValue.objects.filter(profile=profile).count() == 2  # the repeat added no row
    assert profile_recompute(profile_id=profile.pk).traits == {"city": "Rome"}

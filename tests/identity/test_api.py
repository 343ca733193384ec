"""Merges, unmerge and the review queue over the REST API, with a real token per role."""

import pytest

from identity.models import IdentityLink, Merge, Unmerge
from identity.services import profiles_link
from profiles.models import Profile
from profiles.processing import raw_events_process
from tests.identity.test_services import profile_of
from tests.profiles.processing.conftest import event

pytestmark = pytest.mark.django_db
ROLES = ["marketer", "guest_services", "privacy_officer", "integration_engineer"]


@pytest.fixture
def merged(send):
    send(event("page.viewed", at="2026-01-01T10:00:00+00:00", ids=[("email", "ada@example.com")]))
    send(event("page.viewed", at="2026-01-02T10:00:00+00:00", ids=[("user_id", "bob-1")]))
    raw_events_process()
    ada, bob = profile_of("email", "ada@example.com"), profile_of("user_id", "bob-1")
    send(
        event(
            "profile.identified",
            at="2026-01-03T10:00:00+00:00",
            ids=[("email", "ada@example.com"), ("user_id", "bob-1")],
        )
    )
    raw_events_process()
    return Merge.objects.get(), ada, bob


@pytest.mark.parametrize("role", ROLES)
def test_unmerge_permission_and_no_side_effect_when_denied(api, merged, role):
    merge, _, _ = merged
    response = api(role).post(f"/api/v1/merges/{merge.pk}/unmerge", {"reason": "wrong"}, format="json")
    if role == "guest_services":
        assert response.status_code == 201
        assert Unmerge.objects.count() == 1
    else:
        assert response.status_code == 403
        assert Unmerge.objects.count() == 0 and Merge.objects.get().unmerged_at is None


def test_unmerge_via_api_restores_the_absorbed_id(api, merged):
    merge, ada, bob = merged
    client = api("guest_services")
    # While merged, the absorbed id redirects (temporarily) to the survivor.
    response = client.get(f"/api/v1/profiles/{merge.absorbed_id}/")
    assert response.status_code == 302 and response["Location"] == f"/api/v1/profiles/{merge.survivor_id}/"

    response = client.post(f"/api/v1/merges/{merge.pk}/unmerge/", {"reason": "two people"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["restored"] == merge.absorbed_id and body["remaining"] == merge.survivor_id
    assert body["actor"] == f"user:{client.username}" and body["reason"] == "two people"
    assert [link["id"] for link in body["rejected_links"]] == [merge.link_id]

    response = client.get(f"/api/v1/profiles/{merge.absorbed_id}/")
    assert response.status_code == 200 and response.json()["id"] == merge.absorbed_id

    again = client.post(f"/api/v1/merges/{merge.pk}/unmerge", {}, format="json")
    assert again.status_code == 409 and "already undone" in again.json()["detail"]
    assert client.post("/api/v1/merges/999999/unmerge", {}, format="json").status_code == 404


def test_merge_list_filters_and_shows_moved_counts(api, merged):
    merge, ada, bob = merged
    client = api("guest_services")
    rows = client.get(f"/api/v1/merges/?profile={ada.pk}").json()["results"]
    assert [row["id"] for row in rows] == [merge.pk]
    assert rows[0]["moved"]["identifiers"] == 1 and rows[0]["unmerged_at"] is None
    assert client.get("/api/v1/merges/?unmerged=true").json()["results"] == []
    assert client.get("/api/v1/merges/?rule=nope").json()["results"] == []


def test_review_queue_approve_and_reject_over_api(api, send):
    for n in range(3):
        send(event("page.viewed", ids=[("user_id", f"u{n}"), ("email", f"p{n}@example.com")]))
    raw_events_process()
    profiles = [profile_of("user_id", f"u{n}") for n in range(3)]
    first = profiles_link(
        profile_a_id=profiles[0].pk,
        profile_b_id=profiles[1].pk,
        kind="probabilistic",
        rule="probabilistic",
        confidence=0.9,
        evidence={"score": 8},
        activate=False,
        actor="rule:probabilistic",
    )
    second = profiles_link(
        profile_a_id=profiles[0].pk,
        profile_b_id=profiles[2].pk,
        kind="probabilistic",
        rule="probabilistic",
        confidence=0.85,
        evidence={"score": 7},
        activate=False,
        actor="rule:probabilistic",
    )
    client = api("guest_services")
    queue = client.get("/api/v1/identity-links/?status=pending_review&status=blocked").json()["results"]
    assert sorted(row["id"] for row in queue) == sorted([first.link_id, second.link_id])

    # The review queue endpoint shares the page's filters.
    rows = client.get("/api/v1/review-queue/?confidence=high").json()["results"]
    assert [row["id"] for row in rows] == [first.link_id, second.link_id]

    marketer = api("marketer")
    assert marketer.get("/api/v1/review-queue/").status_code == 403
    assert marketer.get("/api/v1/identity-links/").status_code == 403
    assert marketer.post(f"/api/v1/identity-links/{first.link_id}/approve/", {}, format="json").status_code == 403
    assert IdentityLink.objects.get(pk=first.link_id).status == IdentityLink.PENDING_REVIEW

    approved = client.post(f"/api/v1/identity-links/{first.link_id}/approve/", {"note": "same"}, format="json")
    assert approved.status_code == 200
    assert approved.json()["link"]["status"] == "active" and approved.json()["merge"]["absorbed"] == profiles[1].pk
    assert Profile.objects.get(pk=profiles[1].pk).status == Profile.MERGED

    rejected = client.post(f"/api/v1/identity-links/{second.link_id}/reject/", {"note": "no"}, format="json")
    assert rejected.status_code == 200 and rejected.json()["link"]["status"] == "rejected"
    assert rejected.json()["merge"] is None
    twice = client.post(f"/api/v1/identity-links/{second.link_id}/reject/", {}, format="json")
    assert twice.status_code == 409
    too_long = client.post(f"/api/v1/identity-links/{first.link_id}/approve/", {"note": "x" * 600}, format="json")
    assert too_long.status_code == 400 and "note" in too_long.json()

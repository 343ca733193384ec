"""The review queue in the Django admin: approve, reject and unmerge actions, the merge_confidence filter."""

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.test import RequestFactory
from django.urls import reverse

from identity.admin import MergeConfidenceFilter
from identity.models import IdentityLink, Merge, Unmerge
from identity.services import link_approve, profiles_link
from profiles.models import Profile
from tests.identity.test_services import profile_of

pytestmark = pytest.mark.django_db

LINKS = reverse("admin:identity_identitylink_changelist")
MERGES = reverse("admin:identity_merge_changelist")


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def changelist_ids(response) -> list[int]:
    return sorted(row.pk for row in response.context["cl"].result_list)


def test_changelist_shows_both_ends_and_the_review_columns(admin_client, queue):
    response = admin_client.get(LINKS, {"status__exact": "blocked"})
    assert changelist_ids(response) == sorted([queue.old_conflict.pk, queue.recent_conflict.pk])
    html = response.content.decode()
    assert "user_id:u2 (profile" in html and "merge would give the profile 2 user_id identifiers (limit 1)" in html


def test_admin_approve_action_merges(admin_client, queue):
    response = admin_client.post(
        LINKS, {"action": "approve_selected", "_selected_action": [queue.pending.pk, queue.weak.pk]}, follow=True
    )
    assert messages_of(response) == ["Approved 2 links; 2 merges made."]
    assert sorted(Merge.objects.values_list("link_id", "actor")) == sorted(
        [(queue.pending.pk, "user:admin"), (queue.weak.pk, "user:admin")]
    )


def test_admin_reject_action_reports_refusals_per_link(admin_client, queue):
    response = admin_client.post(
        LINKS, {"action": "reject_selected", "_selected_action": [queue.old_conflict.pk, queue.active.pk]}, follow=True
    )
    assert messages_of(response) == [
        f"Link {queue.active.pk}: link {queue.active.pk} is active; unmerge its merge instead.",
        "Rejected 1 links.",
    ]
    assert IdentityLink.objects.get(pk=queue.old_conflict.pk).status == IdentityLink.REJECTED
    assert IdentityLink.objects.get(pk=queue.active.pk).status == IdentityLink.ACTIVE


def test_admin_unmerge_action_asks_for_a_reason_then_unmerges(admin_client, queue):
    merge = link_approve(link_id=queue.pending.pk, actor="user:someone")
    response = admin_client.post(MERGES, {"action": "unmerge_selected", "_selected_action": [merge.pk]})
    assert response.status_code == 200 and 'name="reason"' in response.content.decode()
    assert not Unmerge.objects.exists()
    response = admin_client.post(
        MERGES, {"action": "unmerge_selected", "_selected_action": [merge.pk], "reason": ""}, follow=False
    )
    assert response.status_code == 200 and "Say why the merge is wrong." in response.content.decode()
    response = admin_client.post(
        MERGES, {"action": "unmerge_selected", "_selected_action": [merge.pk], "reason": "kiosk mix-up"}, follow=True
    )
    assert messages_of(response) == ["Unmerged 1 merges."]
    unmerge = Unmerge.objects.get()
    assert (unmerge.merge_id, unmerge.actor, unmerge.reason) == (merge.pk, "user:admin", "kiosk mix-up")
    assert Profile.objects.get(pk=merge.absorbed_id).status == Profile.ACTIVE
    # Undone merges are filtered apart, and a second unmerge is refused with the reason.
    assert changelist_ids(admin_client.get(MERGES, {"unmerged": "yes"})) == [merge.pk]
    assert changelist_ids(admin_client.get(MERGES, {"unmerged": "no"})) == []
    response = admin_client.post(
        MERGES, {"action": "unmerge_selected", "_selected_action": [merge.pk], "reason": "again"}, follow=True
    )
    [problem] = messages_of(response)
    assert problem.startswith(f"Merge {merge.pk}: merge {merge.pk} was already undone on ")
    assert Unmerge.objects.count() == 1


def test_admin_actions_need_the_same_permissions(client, make_user, queue):
    merge = link_approve(link_id=queue.pending.pk, actor="user:someone")
    # Staff who may only look: the actions are not offered, and posting them changes nothing.
    engineer = make_user("integration_engineer", is_staff=True)
    engineer.groups.add(Group.objects.get(name="privacy_officer"))  # view_merge, no add_unmerge
    client.force_login(engineer)
    response = client.get(LINKS)
    assert response.status_code == 200 and "approve_selected" not in response.content.decode()
    client.post(LINKS, {"action": "reject_selected", "_selected_action": [queue.weak.pk]})
    assert IdentityLink.objects.get(pk=queue.weak.pk).status == IdentityLink.PENDING_REVIEW
    assert "unmerge_selected" not in client.get(MERGES).content.decode()
    client.post(MERGES, {"action": "unmerge_selected", "_selected_action": [merge.pk], "reason": "no"})
    assert not Unmerge.objects.exists()
    # Guest services staff get both.
    reviewer = make_user("guest_services", is_staff=True)
    client.force_login(reviewer)
    assert "approve_selected" in client.get(LINKS).content.decode()
    assert "unmerge_selected" in client.get(MERGES).content.decode()


def test_unmerge_rows_are_read_only(admin_client, queue):
    merge = link_approve(link_id=queue.pending.pk, actor="user:someone")
    admin_client.post(
        MERGES, {"action": "unmerge_selected", "_selected_action": [merge.pk], "reason": "kiosk"}, follow=True
    )
    unmerge = Unmerge.objects.get()
    changelist = reverse("admin:identity_unmerge_changelist")
    assert admin_client.get(changelist).status_code == 200
    assert admin_client.get(reverse("admin:identity_unmerge_add")).status_code == 403
    response = admin_client.post(reverse("admin:identity_unmerge_change", args=[unmerge.pk]), {"reason": "edited"})
    assert response.status_code == 403
    assert Unmerge.objects.get().reason == "kiosk"


@pytest.fixture
def confident_pair(queue):
    """Ada's profiles merged on a 0.85 link (merge confidence 0.85), then a pending link to Sam's."""
    outcome = profiles_link(
        profile_a_id=profile_of("email", "ada@example.com").pk,
        profile_b_id=profile_of("email", "grace@example.com").pk,
        kind=IdentityLink.PROBABILISTIC,
        rule="probabilistic",
        confidence=0.85,
        evidence={},
        activate=True,
        actor="rule:probabilistic",
    )
    assert outcome.status == "merged"
    assert profile_of("email", "ada@example.com").merge_confidence == 0.85
    return outcome


@pytest.mark.parametrize(
    "band, expected",
    [
        ("low", []),
        ("medium", []),
        ("high", ["pending", "weak"]),  # each has one end in the 0.85 profile
        ("certain", ["old_conflict", "recent_conflict", "active", "active_booking"]),
    ],
)
def test_merge_confidence_filter_on_links(admin_client, queue, confident_pair, band, expected):
    response = admin_client.get(LINKS, {"merge_confidence": band})
    merged_link = IdentityLink.objects.get(pk=confident_pair.link_id)
    ids = [getattr(queue, name).pk for name in expected] + ([merged_link.pk] if band == "high" else [])
    assert changelist_ids(response) == sorted(ids)


@pytest.mark.parametrize("band, expected", [("low", []), ("medium", []), ("high", ["ada"]), ("certain", "rest")])
def test_merge_confidence_filter_on_profiles(queue, confident_pair, band, expected):
    """The same filter for a ProfileAdmin (profiles/admin.py): the profile's own merge confidence."""
    request = RequestFactory().get("/", {"merge_confidence": band})
    profiles = Profile.objects.filter(status=Profile.ACTIVE)
    ada = profile_of("email", "ada@example.com")
    model_admin = admin.ModelAdmin(Profile, admin.site)
    chosen = MergeConfidenceFilter(request, {"merge_confidence": [band]}, Profile, model_admin)
    found = sorted(chosen.queryset(request, profiles).values_list("pk", flat=True))
    if expected == "rest":
        assert found == sorted(profiles.exclude(pk=ada.pk).values_list("pk", flat=True)) and len(found) == 6
    else:
        assert found == ([ada.pk] if expected else [])

"""The merge-review pages: queue, filters, one pair, decisions, unmerge, permissions."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from identity.filtersets import ReviewLinkFilter
from identity.models import IdentityLink, Merge, Unmerge
from profiles.models import Profile
from profiles.processing import raw_events_process
from tests.identity.review.conftest import propose
from tests.identity.test_services import profile_of
from tests.profiles.processing.conftest import event

pytestmark = pytest.mark.django_db

ROLES = ["marketer", "guest_services", "privacy_officer", "integration_engineer"]


def queue_ids(response) -> list[int]:
    return [link.pk for link in response.context["page"]]


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


@pytest.fixture
def reviewer(client, make_user):
    user = make_user("guest_services", username="gina")
    client.force_login(user)
    return user


# -- the queue ----------------------------------------------------------------------------------


def test_queue_lists_pending_and_conflicts_oldest_first_with_the_reason(client, reviewer, queue):
    response = client.get(reverse("identity:review_queue"))
    assert response.status_code == 200
    assert queue_ids(response) == [
        queue.old_conflict.pk,
        queue.recent_conflict.pk,
        queue.pending.pk,
        queue.weak.pk,
    ]
    html = response.content.decode()
    assert html.count("merge would give the profile 2 user_id identifiers (limit 1)") == 2
    assert html.count('<span class="badge warn">conflict</span>') == 2
    assert html.count('<span class="badge">pending</span>') == 2
    assert "4 links waiting" in html
    # Side by side: both ends' identifiers, the per-field scores, the bulk form and the keys.
    assert "<code>u2</code>" in html and "<code>s***@e***.com</code>" in html  # personal values masked
    assert "first_name: exact" in html
    assert 'id="decide"' in html and "Approve selected" in html and "Reject selected" in html
    assert html.count(f'name="links" value="{queue.pending.pk}"') == 2  # its checkbox and its own form
    assert "<kbd>j</kbd>" in html and "identity/review.js" in html
    assert 'hx-target="#results"' in html and 'hx-trigger="input delay:300ms, submit"' in html


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"status": "pending_review"}, ["pending", "weak"]),
        ({"status": "blocked"}, ["old_conflict", "recent_conflict"]),
        ({"status": "active"}, ["old_conflict", "recent_conflict", "pending", "weak"]),  # not a choice: ignored
        ({"source": "canonical-test-source"}, ["old_conflict", "pending", "weak"]),
        ({"source": "booking"}, ["recent_conflict", "pending"]),  # pending: Ada's phone came from booking
        ({"rule": "co_observed"}, ["old_conflict", "recent_conflict"]),
        ({"rule": "probabilistic"}, ["pending", "weak"]),
        ({"kind": "probabilistic"}, ["pending", "weak"]),
        ({"confidence": "low"}, ["weak"]),
        ({"confidence": "medium"}, ["pending"]),
        ({"confidence": "high"}, []),
        ({"confidence": "certain"}, ["old_conflict", "recent_conflict"]),
        ({"age": "24h"}, ["pending", "weak"]),
        ({"age": "7d"}, ["recent_conflict", "pending", "weak"]),
        ({"age": "older"}, ["old_conflict"]),
        ({"status": "blocked", "source": "booking", "age": "7d"}, ["recent_conflict"]),
    ],
)
def test_each_filter_narrows_exactly(client, reviewer, queue, params, expected):
    response = client.get(reverse("identity:review_queue"), params)
    assert queue_ids(response) == [getattr(queue, name).pk for name in expected]


def test_the_filterset_alone_holds_only_links_waiting_for_review(queue):
    assert sorted(ReviewLinkFilter().qs.values_list("pk", flat=True)) == sorted(
        [queue.old_conflict.pk, queue.recent_conflict.pk, queue.pending.pk, queue.weak.pk]
    )
    assert list(ReviewLinkFilter({"status": "blocked", "confidence": "certain"}).qs.order_by("pk")) == [
        queue.old_conflict,
        queue.recent_conflict,
    ]


def test_htmx_request_gets_the_rows_only(client, reviewer, queue):
    response = client.get(reverse("identity:review_queue"), {"rule": "probabilistic"}, HTTP_HX_REQUEST="true")
    assert [t.name for t in response.templates][0] == "identity/_review_rows.html"
    html = response.content.decode()
    assert "<html" not in html and "<h1>" not in html and 'id="results"' not in html
    assert queue_ids(response) == [queue.pending.pk, queue.weak.pk]
    # The bulk form comes back to the same filtered queue.
    assert 'name="next" value="/identity/review/?rule=probabilistic" form="decide"' in html


def test_pagination_links_keep_the_filters(client, reviewer, queue, monkeypatch):
    monkeypatch.setattr("identity.views_review.PAGE_SIZE", 1)
    response = client.get(reverse("identity:review_queue"), {"rule": "probabilistic"})
    assert queue_ids(response) == [queue.pending.pk]
    html = response.content.decode()
    assert 'href="?rule=probabilistic&amp;page=2"' in html
    assert queue_ids(client.get(reverse("identity:review_queue"), {"rule": "probabilistic", "page": 2})) == [
        queue.weak.pk
    ]


def test_queue_queries_do_not_grow_with_the_rows(client, reviewer, queue, send, django_assert_max_num_queries):
    url = reverse("identity:review_queue")
    client.get(url)  # warm the session
    with CaptureQueriesContext(connection) as four_rows:
        assert len(client.get(url).context["page"]) == 4
    # Three more pending pairs, each between two new profiles with several identifiers.
    for number in range(3):
        send(event(ids=[("email", f"p{number}@example.com"), ("anonymous_id", f"dev-{number}")]))
        send(event(ids=[("phone", f"+1415555020{number}"), ("user_id", f"member-{number}")]))
    raw_events_process()
    for number in range(3):
        propose(profile_of("email", f"p{number}@example.com"), profile_of("user_id", f"member-{number}"), 0.6)
    with django_assert_max_num_queries(len(four_rows.captured_queries)):
        response = client.get(url)
    assert len(response.context["page"]) == 7
    assert len(four_rows.captured_queries) <= 13  # 13th: the vault, for both ends' sealed names


# -- one pair -----------------------------------------------------------------------------------


def test_pair_page_shows_both_profiles_the_scores_and_the_decision_form(client, reviewer, queue):
    response = client.get(reverse("identity:review_link", args=[queue.pending.pk]))
    assert response.status_code == 200
    sides = response.context["sides"]
    ada_email, ada_phone = profile_of("email", "ada@example.com"), profile_of("phone", "+14155550100")
    assert [side["profile"].pk for side in sides] == [ada_email.pk, ada_phone.pk]
    assert [side["events"]["total"] for side in sides] == [1, 1]
    assert sides[0]["traits"] == [("city", "London"), ("first_name", "Ada")]
    html = response.content.decode()
    assert "<code>a***@e***.com</code>" in html and "<code>+*********00</code>" in html  # masked until revealed
    assert response.context["fields"] == [
        ("birth_date", {"level": "missing", "weight": 0}),
        ("first_name", {"level": "exact", "weight": 4.25}),
    ]
    assert "<td>first_name</td><td>exact</td><td>4.25</td>" in html
    assert "<code>7</code>" in html  # the match run
    assert "source canonical-test-source, booking ·" in html  # no evidence source: both ends' sources
    assert "Approve: merge the two profiles" in html and 'name="note"' in html


def test_pair_page_of_a_conflict_shows_the_reason_and_the_source(client, reviewer, queue):
    html = client.get(reverse("identity:review_link", args=[queue.recent_conflict.pk])).content.decode()
    assert "merge would give the profile 2 user_id identifiers (limit 1)" in html
    assert "source booking" in html


def test_pair_page_of_an_unknown_link_is_404(client, reviewer, queue):
    assert client.get(reverse("identity:review_link", args=[9999])).status_code == 404


# -- decisions ----------------------------------------------------------------------------------


def test_approve_from_the_pair_page_merges_as_the_reviewer(client, reviewer, queue):
    response = client.post(
        reverse("identity:review_decide"),
        {"links": [queue.pending.pk], "decision": "approve", "note": "same phone on the booking"},
        follow=True,
    )
    assert response.redirect_chain == [(reverse("identity:review_queue"), 302)]
    assert messages_of(response) == ["Approved 1 link; 1 merge made."]
    merge = Merge.objects.get()
    assert merge.link_id == queue.pending.pk and merge.actor == "user:gina"
    assert merge.evidence["note"] == "same phone on the booking"
    queue.pending.refresh_from_db()
    assert (queue.pending.status, queue.pending.reviewed_by, queue.pending.review_note) == (
        IdentityLink.ACTIVE,
        "user:gina",
        "same phone on the booking",
    )
    assert queue_ids(response) == [queue.old_conflict.pk, queue.recent_conflict.pk, queue.weak.pk]
    # The merge is on the pair page now, with its unmerge form.
    html = client.get(reverse("identity:review_link", args=[queue.pending.pk])).content.decode()
    assert reverse("identity:merge_unmerge", args=[merge.pk]) in html and "Approve:" not in html


def test_approve_a_conflict_merges_despite_the_limit(client, reviewer, queue):
    client.post(reverse("identity:review_decide"), {"links": [queue.old_conflict.pk], "decision": "approve"})
    merge = Merge.objects.get()
    assert merge.link_id == queue.old_conflict.pk
    assert profile_of("user_id", "u1") == profile_of("user_id", "u2")


def test_reject_from_the_page_keeps_the_profiles_apart(client, reviewer, queue):
    back = reverse("identity:review_queue") + "?rule=probabilistic"
    response = client.post(
        reverse("identity:review_decide"),
        {"links": [queue.weak.pk], "decision": "reject", "note": "different birthdays", "next": back},
    )
    assert response.status_code == 302 and response["Location"] == back
    queue.weak.refresh_from_db()
    assert (queue.weak.status, queue.weak.reviewed_by, queue.weak.review_note) == (
        IdentityLink.REJECTED,
        "user:gina",
        "different birthdays",
    )
    assert not Merge.objects.exists()


def test_bulk_approve_and_bulk_reject(client, reviewer, queue):
    response = client.post(
        reverse("identity:review_decide"),
        {"links": [queue.pending.pk, queue.weak.pk], "decision": "approve"},
        follow=True,
    )
    assert messages_of(response) == ["Approved 2 links; 2 merges made."]
    assert sorted(Merge.objects.values_list("link_id", flat=True)) == sorted([queue.pending.pk, queue.weak.pk])
    response = client.post(
        reverse("identity:review_decide"),
        {"links": [queue.old_conflict.pk, queue.recent_conflict.pk], "decision": "reject", "note": "shared email"},
        follow=True,
    )
    assert messages_of(response) == ["Rejected 2 links; the profiles stay apart."]
    assert set(
        IdentityLink.objects.filter(pk__in=[queue.old_conflict.pk, queue.recent_conflict.pk]).values_list(
            "status", "review_note"
        )
    ) == {(IdentityLink.REJECTED, "shared email")}
    assert queue_ids(response) == []
    assert Merge.objects.count() == 2


def test_a_refused_decision_shows_the_reason_and_changes_nothing(client, reviewer, queue):
    response = client.post(
        reverse("identity:review_decide"), {"links": [queue.active.pk], "decision": "reject"}, follow=True
    )
    assert messages_of(response) == [
        f"Link {queue.active.pk}: link {queue.active.pk} is active; unmerge its merge instead."
    ]
    queue.active.refresh_from_db()
    assert queue.active.status == IdentityLink.ACTIVE and queue.active.reviewed_by == ""


def test_bulk_decides_what_it_can_and_reports_the_rest(client, reviewer, queue):
    response = client.post(
        reverse("identity:review_decide"),
        {"links": [queue.weak.pk, queue.active.pk, 9999], "decision": "reject"},
        follow=True,
    )
    assert messages_of(response) == [
        f"Link {queue.active.pk}: link {queue.active.pk} is active; unmerge its merge instead.",
        "Link 9999: no such link.",
        "Rejected 1 link; the profiles stay apart.",
    ]
    assert IdentityLink.objects.get(pk=queue.weak.pk).status == IdentityLink.REJECTED


@pytest.mark.parametrize(
    "data, problem",
    [
        ({"decision": "approve"}, "Select at least one link."),
        ({"links": ["x"], "decision": "approve"}, "Link ids must be whole numbers."),
        ({"links": ["1"], "decision": "merge"}, "Select a valid choice. merge is not one of the available choices."),
    ],
)
def test_bad_decision_input_is_refused(client, reviewer, queue, data, problem):
    response = client.post(reverse("identity:review_decide"), data, follow=True)
    assert messages_of(response) == [problem]
    response = client.post(reverse("identity:review_decide"), data, HTTP_HX_REQUEST="true")
    assert response.status_code == 400 and problem in response.content.decode()
    assert not Merge.objects.exists()
    assert IdentityLink.objects.filter(status=IdentityLink.REJECTED).count() == 0


def test_htmx_decision_redirects_the_client(client, reviewer, queue):
    response = client.post(
        reverse("identity:review_decide"), {"links": [queue.weak.pk], "decision": "reject"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200 and response["HX-Redirect"] == reverse("identity:review_queue")


def test_unsafe_next_is_ignored(client, reviewer, queue):
    response = client.post(
        reverse("identity:review_decide"),
        {"links": [queue.weak.pk], "decision": "reject", "next": "https://evil.example.com/"},
    )
    assert response["Location"] == reverse("identity:review_queue")


# -- unmerge ------------------------------------------------------------------------------------


@pytest.fixture
def merged(queue):
    """Ada's two profiles merged by approving the pending link."""
    from identity.services import link_approve

    return link_approve(link_id=queue.pending.pk, actor="user:someone")


def test_unmerge_from_the_profile_page_restores_the_profile(client, reviewer, merged):
    survivor_url = reverse("profiles:profile_detail", args=[merged.survivor_id])
    html = client.get(survivor_url).content.decode()
    action = reverse("identity:merge_unmerge", args=[merged.pk])
    assert f'action="{action}"' in html and 'name="reason"' in html
    response = client.post(action, {"reason": "two people, one phone", "next": survivor_url}, follow=True)
    restored_url = reverse("profiles:profile_detail", args=[merged.absorbed_id])
    assert response.redirect_chain == [(restored_url, 302)]
    assert messages_of(response) == [
        f"Merge #{merged.pk} undone: profile #{merged.absorbed_id} restored beside #{merged.survivor_id}."
    ]
    unmerge = Unmerge.objects.get()
    assert (unmerge.merge_id, unmerge.actor, unmerge.reason) == (merged.pk, "user:gina", "two people, one phone")
    assert Profile.objects.get(pk=merged.absorbed_id).status == Profile.ACTIVE
    assert profile_of("phone", "+14155550100").pk == merged.absorbed_id
    assert profile_of("email", "ada@example.com").pk == merged.survivor_id
    # The history now says so, and offers no second unmerge.
    html = response.content.decode()
    assert "undone " in html and f'action="{action}"' not in html


def test_unmerge_twice_is_refused_with_a_message(client, reviewer, merged):
    back = reverse("profiles:profile_detail", args=[merged.survivor_id])
    client.post(reverse("identity:merge_unmerge", args=[merged.pk]), {"reason": "wrong", "next": back}, follow=True)
    response = client.post(
        reverse("identity:merge_unmerge", args=[merged.pk]), {"reason": "again", "next": back}, follow=True
    )
    assert response.redirect_chain == [(back, 302)]
    [problem] = messages_of(response)
    assert problem.startswith(f"Unmerge refused: merge {merged.pk} was already undone on ")
    assert Unmerge.objects.count() == 1
    response = client.post(
        reverse("identity:merge_unmerge", args=[merged.pk]), {"reason": "again"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 400 and "Unmerge refused" in response.content.decode()


def test_unmerge_needs_a_reason(client, reviewer, merged):
    response = client.post(reverse("identity:merge_unmerge", args=[merged.pk]), {"reason": ""}, follow=True)
    assert messages_of(response) == ["Say why the merge is wrong."]
    assert not Unmerge.objects.exists()
    merged.refresh_from_db()
    assert merged.unmerged_at is None


def test_unmerge_by_htmx_redirects_the_client_to_the_restored_profile(client, reviewer, merged):
    response = client.post(
        reverse("identity:merge_unmerge", args=[merged.pk]), {"reason": "wrong"}, HTTP_HX_REQUEST="true"
    )
    assert response["HX-Redirect"] == reverse("profiles:profile_detail", args=[merged.absorbed_id])


def test_profile_page_hides_unmerge_without_the_permission(client, make_user, merged):
    client.force_login(make_user("marketer"))
    html = client.get(reverse("profiles:profile_detail", args=[merged.survivor_id])).content.decode()
    assert "merged into" in html and reverse("identity:merge_unmerge", args=[merged.pk]) not in html


# -- permissions --------------------------------------------------------------------------------

READERS = {"guest_services", "integration_engineer"}
DECIDERS = {"guest_services"}


@pytest.mark.parametrize("role", ROLES)
def test_permission_matrix_pages(client, make_user, queue, role):
    client.force_login(make_user(role))
    expected = 200 if role in READERS else 403
    assert client.get(reverse("identity:review_queue")).status_code == expected
    assert client.get(reverse("identity:review_link", args=[queue.pending.pk])).status_code == expected


@pytest.mark.parametrize("role", ROLES)
def test_permission_matrix_decide(client, make_user, queue, role):
    client.force_login(make_user(role))
    response = client.post(reverse("identity:review_decide"), {"links": [queue.pending.pk], "decision": "approve"})
    assert response.status_code == (302 if role in DECIDERS else 403)
    assert Merge.objects.count() == (1 if role in DECIDERS else 0)
    queue.pending.refresh_from_db()
    assert queue.pending.status == (IdentityLink.ACTIVE if role in DECIDERS else IdentityLink.PENDING_REVIEW)


@pytest.mark.parametrize("role", ROLES)
def test_permission_matrix_unmerge(client, make_user, merged, role):
    client.force_login(make_user(role))
    response = client.post(reverse("identity:merge_unmerge", args=[merged.pk]), {"reason": "wrong"})
    assert response.status_code == (302 if role in DECIDERS else 403)
    assert Unmerge.objects.count() == (1 if role in DECIDERS else 0)
    merged.refresh_from_db()
    assert (merged.unmerged_at is not None) == (role in DECIDERS)


def test_decide_and_unmerge_accept_only_post(client, reviewer, merged):
    assert client.get(reverse("identity:review_decide")).status_code == 405
    assert client.get(reverse("identity:merge_unmerge", args=[merged.pk])).status_code == 405


def test_anonymous_users_go_to_login_and_change_nothing(client, queue, merged):
    requests = [
        ("get", reverse("identity:review_queue"), {}),
        ("get", reverse("identity:review_link", args=[queue.weak.pk]), {}),
        ("post", reverse("identity:review_decide"), {"links": [queue.weak.pk], "decision": "reject"}),
        ("post", reverse("identity:merge_unmerge", args=[merged.pk]), {"reason": "wrong"}),
    ]
    for method, url, data in requests:
        response = getattr(client, method)(url, data)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url
    assert IdentityLink.objects.get(pk=queue.weak.pk).status == IdentityLink.PENDING_REVIEW
    assert not Unmerge.objects.exists()


def test_integration_engineer_sees_the_queue_without_decision_controls(client, make_user, queue):
    client.force_login(make_user("integration_engineer"))
    html = client.get(reverse("identity:review_queue")).content.decode()
    assert "Approve selected" not in html and 'data-key="approve"' not in html
    html = client.get(reverse("identity:review_link", args=[queue.pending.pk])).content.decode()
    assert "Approve: merge the two profiles" not in html


def test_a_new_pending_pair_shows_up(client, reviewer, queue):
    link = propose(profile_of("user_id", "u2"), profile_of("user_id", "u4"), 0.9)
    assert queue_ids(client.get(reverse("identity:review_queue"), {"confidence": "high"})) == [link.pk]

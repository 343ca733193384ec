"""The self-service token page: a signed-in user issues and revokes their own REST API tokens.

The cleartext is shown once, in the POST response only; the tokens work against the API with the
scopes chosen; revoking answers 401 afterwards; another user's token is a 404; bad input, the cap,
a missing CSRF token and anonymous visitors create nothing; every change is audited without the token.
"""

import json
import re
from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from cdp_site.api_tokens import MAX_ACTIVE_TOKENS_PER_USER, ApiTokenRefused, api_token_issue_own
from cdp_site.models import ApiToken, AuditEntry
from cdp_site.navigation import menu_for
from cdp_site.roles import ROLES
from profiles.models import RawEvent

pytestmark = pytest.mark.django_db

LIST, ISSUE = reverse("tokens:list"), reverse("tokens:issue")


@pytest.fixture
def engineer(roles, make_user):
    return make_user("integration_engineer")


@pytest.fixture
def page(engineer):
    client = Client()
    client.force_login(engineer)
    return client


def issue_form(**fields) -> dict:
    return {"name": "Nightly export", "scopes": ["read"], "expires_in_days": "90", **fields}


def issued_token(response) -> str:
    found = re.findall(r'data-testid="issued-token">([^<]+)<', response.content.decode())
    assert len(found) == 1, "the page shows the new token exactly once"
    return found[0]


def api_with(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def revoke_url(row: ApiToken) -> str:
    return reverse("tokens:revoke", args=[row.pk])


def quarantined(send) -> RawEvent:
    raw = send()
    RawEvent.objects.filter(pk=raw.pk).update(status=RawEvent.QUARANTINED, error="contract")
    return raw


# -- issue -----------------------------------------------------------------------------------------


def test_an_issued_read_token_is_shown_once_and_reads_but_cannot_write(page, engineer, send):
    raw = quarantined(send)

    response = page.post(ISSUE, issue_form(scopes=["read"], expires_in_days="30"))

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert "will not be shown again" in response.content.decode()
    token = issued_token(response)
    row = ApiToken.objects.get(user=engineer)
    assert (row.name, row.scopes, row.token_prefix) == ("Nightly export", ["read"], token[:10])
    assert abs(row.expires_at - (timezone.now() + timedelta(days=30))) < timedelta(minutes=1)

    api = api_with(token)
    assert api.get("/api/v1/sources/").status_code == 200
    refused = api.post(f"/api/v1/raw-events/{raw.pk}/replay/", {}, format="json")
    assert refused.status_code == 403
    assert refused.json() == {"detail": "This API token lacks the 'write' scope for POST."}
    assert RawEvent.objects.get(pk=raw.pk).status == RawEvent.QUARANTINED


def test_an_issued_write_token_writes_and_never_expires_when_asked(page, engineer, send):
    raw = quarantined(send)

    token = issued_token(page.post(ISSUE, issue_form(scopes=["read", "write"], expires_in_days="never")))

    row = ApiToken.objects.get(user=engineer)
    assert (row.scopes, row.expires_at) == (["read", "write"], None)
    assert api_with(token).post(f"/api/v1/raw-events/{raw.pk}/replay/", {}, format="json").status_code == 200
    assert RawEvent.objects.get(pk=raw.pk).status != RawEvent.QUARANTINED


def test_the_token_is_stored_hashed_and_never_shown_or_kept_again(page, engineer):
    response = page.post(ISSUE, issue_form())
    token = issued_token(response)

    assert not response.has_header("Location")
    row = ApiToken.objects.get(user=engineer)
    stored = json.dumps(list(ApiToken.objects.values_list()), default=str)
    assert token not in stored and token[len(ApiToken.PREFIX) + 6 :] not in stored
    assert row.token_hash == ApiToken.hash_token(token)
    sessions = json.dumps([session.get_decoded() for session in Session.objects.all()], default=str)
    assert token not in sessions  # nor in the messages kept for the next page

    html = page.get(LIST).content.decode()
    assert token not in html and token[len(ApiToken.PREFIX) + 6 :] not in html
    assert f"{row.token_prefix}…" in html and "Nightly export" in html and "will not be shown again" not in html


def test_the_list_shows_only_ones_own_tokens_newest_first_25_a_page(page, engineer, make_user):
    someone_else = make_user("marketer")
    ApiToken.issue(user=someone_else, name="not yours")
    mine = [ApiToken.issue(user=engineer, name=f"token {number}")[0] for number in range(30)]
    ApiToken.objects.filter(pk=mine[0].pk).update(revoked_at=timezone.now())
    ApiToken.objects.filter(pk=mine[1].pk).update(expires_at=timezone.now() - timedelta(days=1))

    first = page.get(LIST)
    second = page.get(LIST, {"page": 2})

    assert [row.pk for row in first.context["page"]] == [row.pk for row in reversed(mine)][:25]
    assert [row.pk for row in second.context["page"]] == [row.pk for row in reversed(mine)][25:]
    assert {row.pk: row.status for row in second.context["page"]}[mine[0].pk] == "revoked"
    assert {row.pk: row.status for row in second.context["page"]}[mine[1].pk] == "expired"
    assert {row.status for row in first.context["page"]} == {"active"}
    assert "not yours" not in first.content.decode() + second.content.decode()
    assert 'class="badge bad">revoked' in second.content.decode()
    assert 'class="badge warn">expired' in second.content.decode()


def test_the_list_reads_a_constant_number_of_queries(page, engineer, django_assert_num_queries):
    ApiToken.issue(user=engineer)
    page.get(LIST)  # warm the session and the content types
    with CaptureQueriesContext(connection) as one:
        page.get(LIST)
    for _ in range(30):
        ApiToken.issue(user=engineer)
    with django_assert_num_queries(len(one.captured_queries)):
        assert page.get(LIST).status_code == 200


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"scopes": []}, "Choose at least one scope."),
        ({"scopes": ["admin"]}, "Select a valid choice. admin is not one of the available choices."),
        ({"expires_in_days": "45"}, "Select a valid choice. 45 is not one of the available choices."),
        ({"expires_in_days": ""}, "This field is required."),
        ({"name": ""}, "This field is required."),
        ({"name": "x" * 101}, "Ensure this value has at most 100 characters (it has 101)."),
    ],
)
def test_invalid_input_answers_400_with_the_error_and_creates_nothing(page, fields, message):
    response = page.post(ISSUE, issue_form(**fields))

    assert response.status_code == 400
    assert message in response.content.decode() and 'role="alert"' in response.content.decode()
    assert 'data-testid="issued-token"' not in response.content.decode()
    assert (ApiToken.objects.count(), AuditEntry.objects.count()) == (0, 0)


def test_the_service_refuses_what_the_form_would_have_caught(engineer):
    for fields in ({"name": " "}, {"scopes": []}, {"scopes": ["admin"]}, {"expires_in_days": 45}):
        values = {"name": "x", "scopes": ["read"], "expires_in_days": 7, **fields}
        with pytest.raises(ApiTokenRefused):
            api_token_issue_own(user=engineer, actor="test", **values)
    assert (ApiToken.objects.count(), AuditEntry.objects.count()) == (0, 0)


def test_a_21st_active_token_is_refused_until_one_is_revoked(page, engineer):
    existing = [ApiToken.issue(user=engineer)[0] for _ in range(MAX_ACTIVE_TOKENS_PER_USER)]
    # Revoked and expired tokens do not count toward the cap.
    ApiToken.issue(user=engineer, expires_at=timezone.now() - timedelta(seconds=1))
    ApiToken.objects.filter(pk=ApiToken.issue(user=engineer)[0].pk).update(revoked_at=timezone.now())

    response = page.post(ISSUE, issue_form())

    assert response.status_code == 400
    assert "You already have 20 active tokens" in response.content.decode()
    assert ApiToken.objects.filter(user=engineer).count() == MAX_ACTIVE_TOKENS_PER_USER + 2
    assert AuditEntry.objects.count() == 0

    assert page.post(revoke_url(existing[0])).status_code == 302
    assert page.post(ISSUE, issue_form()).status_code == 200
    assert ApiToken.objects.filter(user=engineer).count() == MAX_ACTIVE_TOKENS_PER_USER + 3


# -- revoke ----------------------------------------------------------------------------------------


def test_revoking_through_the_page_makes_the_token_answer_401(page, engineer):
    token = issued_token(page.post(ISSUE, issue_form()))
    row = ApiToken.objects.get(user=engineer)
    api = api_with(token)
    assert api.get("/api/v1/sources/").status_code == 200

    response = page.post(revoke_url(row), follow=True)

    assert response.redirect_chain == [(LIST, 302)]
    assert f"Token {row.token_prefix}… revoked" in response.content.decode()
    refused = api.get("/api/v1/sources/")
    assert (refused.status_code, refused.json()) == (401, {"detail": "Token revoked."})
    row.refresh_from_db()
    assert row.revoked_at is not None and ApiToken.objects.filter(pk=row.pk).exists()


def test_revoking_twice_is_harmless(page, engineer):
    row, _ = ApiToken.issue(user=engineer)
    page.post(revoke_url(row))
    first_revoked_at = ApiToken.objects.get(pk=row.pk).revoked_at

    response = page.post(revoke_url(row), follow=True)

    assert response.status_code == 200 and "was already revoked" in response.content.decode()
    assert ApiToken.objects.get(pk=row.pk).revoked_at == first_revoked_at
    assert AuditEntry.objects.filter(action="api_token.revoke").count() == 1


def test_another_users_token_answers_404_and_stays_as_it_was(page, make_user):
    other, token = ApiToken.issue(user=make_user("marketer"))
    missing_pk = ApiToken.objects.order_by("-pk").first().pk + 1000

    assert page.post(revoke_url(other)).status_code == 404
    assert page.post(reverse("tokens:revoke", args=[missing_pk])).status_code == 404  # looks the same

    other.refresh_from_db()
    assert (other.revoked_at, other.is_active) == (None, True)
    assert api_with(token).get("/api/v1/profiles/").status_code == 200
    assert AuditEntry.objects.count() == 0


def test_only_post_revokes(page, engineer):
    row, _ = ApiToken.issue(user=engineer)
    assert page.get(revoke_url(row)).status_code == 405
    assert page.get(ISSUE).status_code == 405
    assert ApiToken.objects.get(pk=row.pk).revoked_at is None


# -- audit -----------------------------------------------------------------------------------------


def test_issue_and_revoke_are_audited_without_the_token(page, engineer):
    token = issued_token(page.post(ISSUE, issue_form(scopes=["metrics", "read"])))
    row = ApiToken.objects.get(user=engineer)
    page.post(revoke_url(row))

    entries = list(AuditEntry.objects.order_by("id"))
    assert [(entry.action, entry.actor, entry.target_type, entry.target_id) for entry in entries] == [
        ("api_token.issue", f"user:{engineer.username}", "cdp_site.apitoken", str(row.pk)),
        ("api_token.revoke", f"user:{engineer.username}", "cdp_site.apitoken", str(row.pk)),
    ]
    assert entries[0].summary == f"Issued API token {row.token_prefix}… (metrics, read)"
    assert entries[0].detail == {"token_prefix": row.token_prefix, "scopes": ["metrics", "read"], "expires_in_days": 90}
    assert entries[1].summary == f"Revoked API token {row.token_prefix}…"
    stored = json.dumps(list(AuditEntry.objects.values_list()), default=str)
    assert token not in stored and row.token_hash not in stored
    assert token[len(ApiToken.PREFIX) + 6 :] not in stored


# -- who may -----------------------------------------------------------------------------------------


def test_a_post_without_a_csrf_token_is_refused_and_changes_nothing(engineer):
    row, _ = ApiToken.issue(user=engineer)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(engineer)

    issued = browser.post(ISSUE, issue_form())
    revoked = browser.post(revoke_url(row))

    assert (issued.status_code, revoked.status_code) == (403, 403)
    assert b"CSRF" in issued.content and b"CSRF" in revoked.content
    assert list(ApiToken.objects.values_list("pk", "revoked_at")) == [(row.pk, None)]
    assert AuditEntry.objects.count() == 0


def test_the_page_form_carries_a_csrf_token_that_passes(engineer):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(engineer)
    html = browser.get(LIST).content.decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)

    response = browser.post(ISSUE, {**issue_form(), "csrfmiddlewaretoken": csrf})

    assert response.status_code == 200 and ApiToken.objects.filter(user=engineer).count() == 1


def test_anonymous_visitors_go_to_the_login_page_and_change_nothing(client, engineer):
    row, _ = ApiToken.issue(user=engineer)
    login = reverse("login")

    for response in (client.get(LIST), client.post(ISSUE, issue_form()), client.post(revoke_url(row))):
        assert response.status_code == 302 and response["Location"].startswith(login)
    assert list(ApiToken.objects.values_list("pk", "revoked_at")) == [(row.pk, None)]
    assert AuditEntry.objects.count() == 0


@pytest.mark.parametrize("role", [*ROLES, None])
def test_every_signed_in_user_sees_the_menu_entry_and_the_page(roles, make_user, role):
    user = make_user(*([role] if role else []))
    assert "API tokens" in {entry["label"] for entry in menu_for(user)}
    browser = Client()
    browser.force_login(user)
    response = browser.get(LIST)
    assert response.status_code == 200 and 'data-testid="issue-form"' in response.content.decode()

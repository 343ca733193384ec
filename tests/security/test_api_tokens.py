"""API tokens: stored hashed, scoped (403 out of scope), and refused when revoked or expired (401)."""

import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from cdp_site.models import ApiToken, api_token_all_scopes
from profiles.models import RawEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def engineer(roles, make_user):
    return make_user("integration_engineer")


def client_with(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def issue(user, **fields) -> tuple[ApiToken, APIClient]:
    row, token = ApiToken.issue(user=user, **fields)
    return row, client_with(token)


def quarantined(send) -> RawEvent:
    raw = send()
    RawEvent.objects.filter(pk=raw.pk).update(status=RawEvent.QUARANTINED, error="contract")
    return raw


def test_only_a_hash_of_the_token_is_stored(engineer):
    row, token = ApiToken.issue(user=engineer)
    stored = json.dumps(list(ApiToken.objects.filter(pk=row.pk).values_list()), default=str)
    assert token not in stored and token[len(ApiToken.PREFIX) + 6 :] not in stored
    assert row.token_hash == ApiToken.hash_token(token) and len(row.token_hash) == 64
    assert row.token_prefix == token[:10]


def test_a_token_has_every_scope_and_no_expiry_unless_told():
    # What the migration gives tokens issued before scopes existed: the column default.
    assert ApiToken._meta.get_field("scopes").get_default() == ["metrics", "read", "write"] == api_token_all_scopes()
    assert ApiToken._meta.get_field("expires_at").get_default() is None


def test_issue_refuses_unknown_or_empty_scopes(engineer):
    for scopes in (["admin"], [], ["read", "delete"]):
        with pytest.raises(ValueError, match="scopes must be"):
            ApiToken.issue(user=engineer, scopes=scopes)
    assert ApiToken.objects.count() == 0


def test_a_read_token_reads_but_cannot_write(engineer, send):
    raw = quarantined(send)
    _, api = issue(engineer, scopes=["read"])

    assert api.get("/api/v1/sources/").status_code == 200
    assert api.get("/metrics").status_code == 200  # read covers the metrics endpoints
    response = api.post(f"/api/v1/raw-events/{raw.pk}/replay/", {}, format="json")
    assert response.status_code == 403
    assert response.json() == {"detail": "This API token lacks the 'write' scope for POST."}
    assert RawEvent.objects.get(pk=raw.pk).status == RawEvent.QUARANTINED


def test_a_write_token_writes_but_cannot_read(engineer, send):
    raw = quarantined(send)
    _, api = issue(engineer, scopes=["write"])

    response = api.get("/api/v1/sources/")
    assert response.status_code == 403
    assert response.json() == {"detail": "This API token lacks the 'read' scope for GET."}
    assert api.post(f"/api/v1/raw-events/{raw.pk}/replay/", {}, format="json").status_code == 200
    assert RawEvent.objects.get(pk=raw.pk).status != RawEvent.QUARANTINED


def test_a_metrics_token_scrapes_metrics_and_nothing_else(engineer):
    _, api = issue(engineer, scopes=["metrics"])

    assert api.get("/metrics").status_code == 200
    assert api.get("/api/v1/operations/metrics/").status_code == 200
    for path in ("/api/v1/sources/", "/api/v1/raw-events/", "/api/v1/profiles/", "/api/v1/operations/trends/"):
        response = api.get(path)
        assert response.status_code == 403, path
        assert response.json()["detail"] == "This API token lacks the 'read' scope for GET.", path


def test_scopes_never_widen_role_permissions(roles, make_user):
    marketer = make_user("marketer")
    _, api = issue(marketer)  # every scope, but a marketer's role
    assert api.get("/metrics").status_code == 403
    assert api.get("/api/v1/raw-events/").status_code == 403
    assert api.get("/api/v1/profiles/").status_code == 200


def test_session_users_are_not_scoped(engineer, client):
    client.force_login(engineer)
    assert client.get("/api/v1/sources/").status_code == 200


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"revoked_at": timezone.now()}, "Token revoked."),
        ({"is_active": False}, "Token revoked."),  # the admin's switch
        ({"expires_at": timezone.now() - timedelta(seconds=1)}, "Token expired."),
    ],
)
def test_revoked_and_expired_tokens_answer_401_saying_which(engineer, change, detail):
    row, api = issue(engineer)
    assert api.get("/api/v1/sources/").status_code == 200
    ApiToken.objects.filter(pk=row.pk).update(**change)

    for path in ("/api/v1/sources/", "/metrics"):
        response = api.get(path)
        assert response.status_code == 401, path
        assert response["WWW-Authenticate"] == "Token"
    assert api.get("/api/v1/sources/").json() == {"detail": detail}


def test_a_token_that_has_not_expired_yet_works(engineer):
    _, api = issue(engineer, expires_at=timezone.now() + timedelta(minutes=5))
    assert api.get("/api/v1/sources/").status_code == 200


def test_an_unknown_token_or_an_inactive_user_answers_401(engineer):
    response = client_with("cdp_not-a-real-token").get("/api/v1/sources/")
    assert (response.status_code, response.json()) == (401, {"detail": "Invalid token."})

    _, api = issue(engineer)
    engineer.is_active = False
    engineer.save()
    assert api.get("/api/v1/sources/").status_code == 401


def test_the_command_issues_scoped_expiring_tokens(engineer, capsys):
    call_command("create_api_token", engineer.username, "--scopes", "metrics", "--expires-in-days", "30")
    printed = json.loads(capsys.readouterr().out)

    row = ApiToken.objects.get(token_hash=ApiToken.hash_token(printed["token"]))
    assert row.scopes == printed["scopes"] == ["metrics"]
    assert abs(row.expires_at - (timezone.now() + timedelta(days=30))) < timedelta(minutes=1)
    assert printed["expires_at"] == row.expires_at.isoformat()
    assert client_with(printed["token"]).get("/metrics").status_code == 200

    call_command("create_api_token", engineer.username)
    printed = json.loads(capsys.readouterr().out)
    assert (printed["scopes"], printed["expires_at"]) == (["metrics", "read", "write"], None)


@pytest.mark.parametrize(
    "arguments",
    [["--scopes", "admin"], ["--scopes", ","], ["--scopes", "read,everything"], ["--expires-in-days", "0"]],
)
def test_the_command_refuses_bad_scopes_and_expiry(engineer, arguments):
    with pytest.raises(CommandError):
        call_command("create_api_token", engineer.username, *arguments)
    assert ApiToken.objects.count() == 0

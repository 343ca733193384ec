"""Log-in rate limiting and lockout: per username and per address, logged and audited, never the password."""

import logging

import pytest
from django.conf import settings
from django.contrib.auth import authenticate
from django.test import Client, override_settings

from cdp_site import login_security
from cdp_site.models import AuditEntry

pytestmark = pytest.mark.django_db

PASSWORD = "pw-123-secret"
WRONG = "Wr0ng-horse-battery"
LOCKED = "Too many failed log-in attempts"


@pytest.fixture
def staff(make_user, unique_name):
    return make_user(username=unique_name("staff"))


def log_in(username, password, address, client=None):
    client = client or Client()
    return client.post("/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def logged_in(response) -> bool:
    return response.status_code == 302 and response["Location"] == "/"


def actions() -> list[str]:
    return list(AuditEntry.objects.order_by("id").values_list("action", flat=True))


def test_the_log_in_page_works_and_audits_the_log_in(staff, address):
    response = log_in(staff.username, PASSWORD, address())
    assert logged_in(response)
    entry = AuditEntry.objects.get(action="auth.login")
    assert (entry.actor, entry.target_id) == (f"user:{staff.username}", str(staff.pk))


def test_a_username_is_locked_after_the_failures_allowed(staff, address, caplog):
    caplog.set_level(logging.INFO, logger="cdp_site.login_security")
    allowed = settings.LOGIN_MAX_FAILURES_PER_USERNAME
    assert allowed == 5

    for attempt in range(allowed - 1):
        response = log_in(staff.username, WRONG, address())  # a new address each time: only the name counts
        assert response.status_code == 200 and LOCKED not in response.content.decode()
        assert "Please enter a correct username and password" in response.content.decode()
    response = log_in(staff.username, WRONG, address())
    assert LOCKED in response.content.decode(), "the failure that reaches the limit says so at once"

    # The right password is refused now too, from anywhere, with a clear message.
    response = log_in(staff.username, PASSWORD, address())
    assert response.status_code == 200 and not logged_in(response)
    assert "Log-in is locked for 15 minutes" in response.content.decode()
    assert authenticate(username=staff.username, password=PASSWORD) is None

    # Attempts refused during the lockout are logged, not audited one by one (a flood would fill the log).
    assert actions() == ["auth.login_failed"] * allowed + ["auth.login_lockout"]
    lockout = AuditEntry.objects.get(action="auth.login_lockout")
    assert lockout.detail["username"] == staff.username and lockout.detail["locked"] == "username"
    assert lockout.detail["failures"] == allowed and lockout.detail["lockout_seconds"] == 900

    messages = [record.getMessage() for record in caplog.records]
    assert sum("login_failed" in m for m in messages) == allowed
    assert sum("login_lockout kind=username" in m for m in messages) == 1
    assert sum("login_refused_locked" in m for m in messages) >= 1
    for text in messages + [str(entry.detail) + entry.summary for entry in AuditEntry.objects.all()]:
        assert WRONG not in text and PASSWORD not in text


def test_the_lockout_ends_after_its_time(staff, address, monkeypatch):
    for _ in range(settings.LOGIN_MAX_FAILURES_PER_USERNAME):
        log_in(staff.username, WRONG, address())
    assert LOCKED in log_in(staff.username, PASSWORD, address()).content.decode()

    later = login_security._now() + settings.LOGIN_LOCKOUT_SECONDS + 1
    monkeypatch.setattr(login_security, "_now", lambda: later)
    assert logged_in(log_in(staff.username, PASSWORD, address()))


def test_a_success_clears_the_username_count(staff, address):
    for _ in range(settings.LOGIN_MAX_FAILURES_PER_USERNAME - 1):
        log_in(staff.username, WRONG, address())
    assert logged_in(log_in(staff.username, PASSWORD, address()))
    for _ in range(settings.LOGIN_MAX_FAILURES_PER_USERNAME - 1):
        log_in(staff.username, WRONG, address())
    assert logged_in(log_in(staff.username, PASSWORD, address()))


def test_usernames_are_counted_whatever_their_case(staff, address):
    for _ in range(settings.LOGIN_MAX_FAILURES_PER_USERNAME):
        log_in(staff.username.upper(), WRONG, address())
    assert LOCKED in log_in(staff.username, PASSWORD, address()).content.decode()


@override_settings(LOGIN_MAX_FAILURES_PER_IP=6)
def test_an_address_spraying_many_usernames_is_locked(make_user, unique_name, address):
    sprayer, other = address(), address()
    victim = make_user(username=unique_name("victim"))
    for _ in range(6):
        response = log_in(unique_name("guess"), WRONG, sprayer)
    assert LOCKED in response.content.decode()

    # The address is locked even for a real account and the right password; others are not.
    assert LOCKED in log_in(victim.username, PASSWORD, sprayer).content.decode()
    assert logged_in(log_in(victim.username, PASSWORD, other))
    lockout = AuditEntry.objects.get(action="auth.login_lockout")
    assert (lockout.detail["locked"], lockout.detail["address"]) == ("address", sprayer)


def test_unknown_usernames_are_never_written_down(address, unique_name, caplog):
    caplog.set_level(logging.DEBUG)
    typed = "hunter2-" + unique_name("typed-password")  # a password typed into the username box
    log_in(typed, WRONG, address())
    log_in(typed, WRONG, address())

    entries = list(AuditEntry.objects.filter(action="auth.login_failed"))
    assert len(entries) == 2
    assert entries[0].detail["username"] is None
    assert entries[0].detail["username_hash"] == entries[1].detail["username_hash"]  # still correlated
    for text in [r.getMessage() for r in caplog.records] + [e.summary + str(e.detail) for e in entries]:
        assert typed not in text and typed.lower() not in text


def test_the_admin_log_in_is_locked_too(staff, address):
    staff.is_staff = True
    staff.save()
    for _ in range(settings.LOGIN_MAX_FAILURES_PER_USERNAME):
        log_in(staff.username, WRONG, address())
    response = Client().post(
        "/admin/login/?next=/admin/", {"username": staff.username, "password": PASSWORD}, REMOTE_ADDR=address()
    )
    assert response.status_code == 200  # the form again, not a redirect into the admin


def test_forwarded_for_counts_only_behind_trusted_proxies(staff, address):
    spoofed, real = address(), address()
    request = type("Request", (), {"META": {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": f"{spoofed}, {real}"}})
    assert login_security.client_address(request) == "127.0.0.1"
    with override_settings(LOGIN_TRUSTED_PROXY_COUNT=1):
        assert login_security.client_address(request) == real  # what our proxy saw, not what the client wrote
    with override_settings(LOGIN_TRUSTED_PROXY_COUNT=3):
        assert login_security.client_address(request) == "127.0.0.1"

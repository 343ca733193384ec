"""CSRF on every form and endpoint, except the signed webhooks and the write-key tracking API.

Pages are protected by CsrfViewMiddleware; DRF views are csrf_exempt for the middleware and check
CSRF themselves for session users (SessionAuthentication), while token callers carry no ambient
credential. The walk reuses the permission matrix's URLs and world: every URL is POSTed without a
token by a session user who may use it, and must answer 403 for CSRF and change nothing.
"""

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.authentication import SessionAuthentication
from rest_framework.views import APIView

from cdp_site.roles import ROLES
from tests.cdp_site.test_permission_matrix import MATRIX, World, changed_tables, database_state

pytestmark = pytest.mark.django_db

# The only views that take POSTs from outside without a CSRF token, and what authenticates them.
CSRF_EXEMPT = {
    "profiles.tracking.views.tracking_call": "write key (HTTP Basic), no cookies",
    "profiles.webhooks.views.webhook_receive": "the sender's signature over the body",
}


def callbacks():
    """(route, name, callback) of every URL pattern, the admin included."""

    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern), pattern.name, pattern.callback

    return list(walk(get_resolver().url_patterns))


def dotted(callback) -> str:
    return f"{callback.__module__}.{callback.__name__}"


def test_the_only_csrf_exempt_views_are_the_webhooks_and_the_tracking_api():
    exempt_pages, api_without_csrf = [], []
    for route, name, callback in callbacks():
        view_class = getattr(callback, "cls", None)
        if view_class is not None and issubclass(view_class, APIView):
            # DRF marks every APIView exempt for the middleware; a session caller is then checked by
            # SessionAuthentication. An authentication class that reads cookies some other way would not be.
            for authentication in view_class().get_authenticators():
                cookie_based = "session" in type(authentication).__name__.lower()
                if cookie_based and not isinstance(authentication, SessionAuthentication):
                    api_without_csrf.append(f"{route} ({type(authentication).__name__})")
            continue
        if getattr(callback, "csrf_exempt", False) and dotted(callback) not in CSRF_EXEMPT:
            exempt_pages.append(f"{route} ({name})")
    assert not exempt_pages, f"csrf_exempt outside the ingestion endpoints: {exempt_pages}"
    assert not api_without_csrf, api_without_csrf
    found = {dotted(callback) for _, _, callback in callbacks() if getattr(callback, "csrf_exempt", False)}
    assert set(CSRF_EXEMPT) <= found, "the ingestion endpoints moved: update CSRF_EXEMPT"


@pytest.fixture
def world(roles, send, canonical_source):
    return World(send, canonical_source)


@pytest.fixture
def session_clients(roles, make_user):
    """Per role, a logged-in browser that enforces CSRF like a real one."""
    made = {}
    for role in ROLES:
        client = Client(enforce_csrf_checks=True)
        client.force_login(make_user(role))
        made[role] = client
    return made


def csrf_refused(response) -> bool:
    body = response.content.decode(errors="replace")
    return response.status_code == 403 and ("CSRF" in body or "csrf" in body)


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_a_post_without_a_csrf_token_is_refused(world, session_clients, name):
    case = MATRIX[name]
    url = reverse(name, kwargs=case.kwargs(world) if case.kwargs else None)
    role = sorted(case.allowed)[0] if case.allowed else ROLES[0]
    before = database_state()

    is_api = url.startswith("/api/") or url == "/metrics"
    if is_api:
        response = session_clients[role].post(url, case.data, content_type="application/json")
    else:
        response = session_clients[role].post(url, case.data)

    assert csrf_refused(response), f"POST {url} ({name}) as {role}: {response.status_code}"
    assert changed_tables(before, database_state()) == []


@pytest.mark.parametrize(
    "url", ["/accounts/login/", "/accounts/logout/", "/accounts/password_change/", "/admin/login/"]
)
def test_the_log_in_and_account_forms_need_a_csrf_token(roles, make_user, url):
    client = Client(enforce_csrf_checks=True)
    if url != "/accounts/login/" and url != "/admin/login/":
        client.force_login(make_user("marketer"))
    response = client.post(url, {"username": "someone", "password": "pw-123-secret"})
    assert csrf_refused(response), f"{url}: {response.status_code}"


def test_a_post_with_the_token_passes_the_check(roles, make_user, world):
    """The positive control: the same browser with the form's token is let through."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("guest_services"))
    client.get(reverse("profiles:profile_detail", args=[world.profile.pk]))
    token = client.cookies["csrftoken"].value
    response = client.post(reverse("profile_reveal", args=[world.profile.pk]), {"csrfmiddlewaretoken": token})
    assert response.status_code != 403

    response = client.post("/api/v1/segments/preview/", {}, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert not csrf_refused(response)  # guest services may not preview, but CSRF is not what stops them


def test_ingestion_endpoints_take_posts_without_a_csrf_token(db):
    client = Client(enforce_csrf_checks=True)
    # Refused for want of a write key or a known source, not for CSRF.
    tracking = client.post("/v1/track", "{}", content_type="application/json")
    webhook = client.post("/webhooks/nobody/", "{}", content_type="application/json")
    assert tracking.status_code == 401 and not csrf_refused(tracking)
    assert webhook.status_code == 404 and not csrf_refused(webhook)

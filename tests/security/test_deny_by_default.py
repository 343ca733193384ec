"""Deny by default: every view names the permission it needs, and one that forgets is closed.

Found by introspection of the URLconf: page views must be wrapped in `login_required` and
`permission_required` (with permissions that exist); DRF views must answer through the project's
permission classes (cdp_site/permissions.py), never AllowAny, and a model-permission view must
have a queryset to take its permission from. Then the behaviour: a signed-in user without a role
gets 403 from every URL of the permission matrix, and a DRF view with no declared permission
refuses everyone.
"""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.test import APIClient, APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from cdp_site.models import ApiToken
from cdp_site.permissions import RoleModelPermissions, ScopedPermission
from tests.cdp_site.test_permission_matrix import MATRIX, TOKEN_URLS, World

pytestmark = pytest.mark.django_db

# Reachable without a role permission, and why. Everything else must declare one.
OPEN_TO_EVERY_SIGNED_IN_USER = {
    "home": "the landing page: menus of what the user's roles may open",
    # One's own API tokens: a token never reaches more than its user's roles do.
    "tokens:list": "one's own API tokens",
    "tokens:issue": "one's own API tokens",
    "tokens:revoke": "one's own API tokens (someone else's answers 404)",
}
PUBLIC = {
    "api-schema": "the OpenAPI description of the API: no data",
    "tracking_call": "ingestion: a source's write key",
    "webhook_receive": "ingestion: the sender's signature",
    # Django's auth pages: before any role applies.
    "login": "",
    "logout": "",
    "password_change": "login_required: one's own password",
    "password_change_done": "",
    "password_reset": "",
    "password_reset_done": "",
    "password_reset_confirm": "",
    "password_reset_complete": "",
}


def views():
    """(name, route, callback) of every URL outside the admin."""

    def walk(patterns, prefix="", namespace=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = ":".join(part for part in (namespace, pattern.namespace or "") if part)
                if inner.split(":")[0] != "admin":
                    yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
            elif isinstance(pattern, URLPattern):
                name = f"{namespace}:{pattern.name}" if namespace and pattern.name else pattern.name
                yield name or f"<unnamed {prefix}{pattern.pattern}>", prefix + str(pattern.pattern), pattern.callback

    return list(walk(get_resolver().url_patterns))


def decorator_checks(callback) -> tuple[bool, list[str]]:
    """(login required?, permissions required) read from the chain of Django's auth decorators."""
    login, permissions = False, []
    function = callback
    while function is not None:
        cells = dict(zip(function.__code__.co_freevars, function.__closure__ or ()))
        test = cells.get("test_func")
        if test is not None:
            test = test.cell_contents
            if test.__qualname__.startswith("login_required."):
                login = True
            elif test.__qualname__.startswith("permission_required."):
                permissions.extend(dict(zip(test.__code__.co_freevars, test.__closure__))["perms"].cell_contents)
        function = getattr(function, "__wrapped__", None)
    return login, permissions


def existing_permission(name: str) -> bool:
    app_label, codename = name.split(".", 1)
    return Permission.objects.filter(content_type__app_label=app_label, codename=codename).exists()


def test_every_page_requires_login_and_a_named_permission():
    problems = []
    for name, route, callback in views():
        if name in PUBLIC or hasattr(callback, "cls"):
            continue
        login, permissions = decorator_checks(callback)
        if not login:
            problems.append(f"{route} ({name}): no login_required")
        if name in OPEN_TO_EVERY_SIGNED_IN_USER:
            continue
        if not permissions:
            problems.append(f"{route} ({name}): no permission_required")
        problems.extend(f"{route} ({name}): unknown permission {p}" for p in permissions if not existing_permission(p))
    assert not problems, "\n".join(problems)


def test_every_api_view_answers_through_the_project_permissions():
    problems = []
    for name, route, callback in views():
        view_class = getattr(callback, "cls", None)
        if view_class is None or name in PUBLIC:
            continue
        actions = getattr(callback, "actions", None) or {}
        for handler_name in set(actions.values()) or {None}:
            handler = getattr(view_class, handler_name, None) if handler_name else None
            kwargs = getattr(handler, "kwargs", {}) if handler else {}
            classes = kwargs.get("permission_classes", view_class.permission_classes)
            where = f"{route} ({name}{'.' + handler_name if handler_name else ''})"
            if not classes:
                problems.append(f"{where}: no permission class")
            for permission in classes:
                if permission is AllowAny or not issubclass(permission, ScopedPermission):
                    problems.append(f"{where}: {permission.__name__} is not a project permission class")
                if issubclass(permission, RoleModelPermissions) and getattr(view_class, "queryset", None) is None:
                    if "get_queryset" not in vars(view_class):
                        problems.append(f"{where}: model permissions without a queryset")
    assert not problems, "\n".join(problems)


def test_the_default_api_permission_denies_a_view_that_declares_nothing(django_user_model):
    class Undeclared(APIView):
        def get(self, request):
            return Response({"secret": True})

    superuser = django_user_model.objects.create_superuser("root", password="pw-123-secret")
    view = Undeclared.as_view()
    factory = APIRequestFactory()

    assert view(factory.get("/undeclared/")).status_code == 401
    request = factory.get("/undeclared/")
    force_authenticate(request, user=superuser)
    response = view(request)
    assert response.status_code == 403
    assert response.data == {"detail": "This endpoint declares no permission, so it is closed."}


@pytest.fixture
def world(roles, send, canonical_source):
    return World(send, canonical_source)


@pytest.mark.parametrize("name", sorted(set(MATRIX) - set(PUBLIC) - set(OPEN_TO_EVERY_SIGNED_IN_USER)))
def test_a_signed_in_user_without_a_role_is_refused_everywhere(world, make_user, name):
    case = MATRIX[name]
    url = reverse(name, kwargs=case.kwargs(world) if case.kwargs else None)
    user = make_user()
    if url.startswith("/api/") or url in TOKEN_URLS:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {ApiToken.issue(user=user)[1]}")
        response = client.get(url) if case.method == "get" else client.post(url, case.data, format="json")
    else:
        client = Client()
        client.force_login(user)
        response = client.get(url) if case.method == "get" else client.post(url, case.data)
    assert response.status_code == 403, f"{case.method.upper()} {url}: {response.status_code}"

import itertools

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from cdp_site.roles import ROLES
from profiles import mappers
from profiles.models import RawEvent
from profiles.sources import source_create

_ids = itertools.count(1)


@pytest.fixture
def roles(db):
    """The role permissions exactly as cdp_site/roles.py lists them now (data migrations apply them;
    tests that check what each role may do apply them again, from the source of truth)."""
    from django.apps import apps

    from cdp_site.roles import sync_role_permissions

    kept = {config.label: config.models_module for config in apps.get_app_configs()}
    sync_role_permissions(apps)
    for config in apps.get_app_configs():
        config.models_module = kept[config.label]


@pytest.fixture
def make_user(django_user_model):
    """A user in the given role groups: make_user("marketer")."""

    def make(*roles, username=None, **fields):
        unknown = set(roles) - set(ROLES)
        assert not unknown, f"unknown roles {unknown}"
        name = username or ("-".join(roles) or "norole") + f"-{django_user_model.objects.count()}"
        user = django_user_model.objects.create_user(username=name, password="pw-123-secret", **fields)
        user.groups.set(Group.objects.filter(name__in=roles))
        return user

    return make


@pytest.fixture
def api(make_user):
    """A REST client holding a real token of a new user in the given roles: api("guest_services")."""
    from rest_framework.test import APIClient

    from cdp_site.models import ApiToken

    def make(*roles):
        user = make_user(*roles)
        _, token = ApiToken.issue(user=user)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        client.username = user.username
        return client

    return make


@pytest.fixture
def canonical_source(monkeypatch, db):
    """A source whose payloads are canonical events (see canonical_mapper)."""
    monkeypatch.setitem(mappers._MODULES, "csv", "tests.profiles.processing.canonical_mapper")
    source, _ = source_create(name="Canonical test source", kind="csv", priority=50)
    return source


@pytest.fixture
def send(canonical_source):
    """Store one pending raw event holding the given canonical events."""

    def send(*events, source=None, external_id=None, **payload):
        return RawEvent.objects.create(
            source=source or canonical_source,
            external_id=external_id or f"evt-{next(_ids)}",
            received_at=timezone.now(),
            payload={"events": list(events), **payload},
        )

    return send

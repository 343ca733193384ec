"""Fixtures for the hostile-input tests: a fuzz marker, an all-roles API token, sources to attack."""

import pytest
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from cdp_site.roles import ROLES
from profiles.sources import source_create


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "fuzz: property-based or schema-driven fuzzing, bounded in examples and time (runs in make test)"
    )


@pytest.fixture
def all_roles_token(make_user):
    """A real API token of a user in every role group, so the fuzzer reaches every operation."""
    from cdp_site.models import ApiToken

    user = make_user(*ROLES, username="fuzzer")
    _, token = ApiToken.issue(user=user)
    return token


@pytest.fixture
def wsgi_keeps_test_connection():
    """The raw WSGI app (unlike Django's test client) closes connections at request start and end,
    which would end the test's transaction; detach that for the test, as the test client does."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def fresh_rate_and_key_caches():
    cache.clear()
    yield


@pytest.fixture
def tracking_source(db, fresh_rate_and_key_caches):
    source, credentials = source_create(name="Hostile SDK", kind="tracking", slug="hostile-sdk")
    return source, credentials.write_key

import secrets

import pytest
from django.apps import apps

from cdp_site.roles import sync_role_permissions


@pytest.fixture
def roles(db):
    """The role permissions as cdp_site/roles.py has them now (a data migration applies them)."""
    kept = {config.label: config.models_module for config in apps.get_app_configs()}
    sync_role_permissions(apps)
    for config in apps.get_app_configs():
        config.models_module = kept[config.label]


@pytest.fixture
def address():
    """A client address of its own per call: log-in counters live in a cache that may outlive a test
    (Redis when REDIS_URL is set), so tests never share an address or a username."""

    def make() -> str:
        return "10." + ".".join(str(secrets.randbelow(256)) for _ in range(3))

    return make


@pytest.fixture
def unique_name():
    """A username no other test (or other test process sharing the cache) uses."""
    return lambda prefix="user": f"{prefix}-{secrets.token_hex(6)}"

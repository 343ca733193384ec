import pytest
from django.apps import apps
from django.test import Client

from cdp_site.roles import sync_role_permissions


@pytest.fixture
def roles(db):
    """The role permissions as cdp_site/roles.py has them now."""
    kept = {config.label: config.models_module for config in apps.get_app_configs()}
    sync_role_permissions(apps)
    for config in apps.get_app_configs():
        config.models_module = kept[config.label]


@pytest.fixture
def page(roles, make_user):
    """A logged-in page client of a new user in the given role: page("marketer")."""

    def make(role):
        client = Client()
        client.force_login(make_user(role))
        return client

    return make


@pytest.fixture
def no_backoff(monkeypatch):
    """Webhook retries without waiting between attempts."""
    monkeypatch.setattr("cdp_site.alerts.WEBHOOK_BACKOFF_SECONDS", (0.0, 0.0))

import pytest
from django.test import Client


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

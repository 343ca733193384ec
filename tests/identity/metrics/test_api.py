"""GET /api/v1/identity/metrics/: permission matrix, current figures and history."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from identity.metrics import identity_metrics_snapshot
from identity.models import IdentityMetricSnapshot
from tests.identity.metrics.test_metrics import EXPECTED

pytestmark = pytest.mark.django_db

PATH = "/api/v1/identity/metrics/"
ALLOWED = {"marketer", "guest_services", "integration_engineer"}


@pytest.mark.parametrize("role", ["marketer", "guest_services", "privacy_officer", "integration_engineer"])
def test_permission_matrix(api, role):
    assert api(role).get(PATH).status_code == (200 if role in ALLOWED else 403)


def test_no_token_is_401():
    assert APIClient().get(PATH).status_code == 401


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_read_only(api, method):
    response = getattr(api("integration_engineer"), method)(PATH, {}, format="json")
    assert response.status_code == 405
    assert IdentityMetricSnapshot.objects.count() == 0


def test_current_figures_and_history(api, graph):
    first, second = identity_metrics_snapshot(), identity_metrics_snapshot()
    IdentityMetricSnapshot.objects.filter(pk=first.pk).update(captured_at=timezone.now() - timedelta(hours=1))
    body = api("marketer").get(PATH).json()

    current = body["current"]
    assert current["review_backlog"].pop("oldest_age_seconds") > 0
    expected = {**EXPECTED, "review_backlog": {**EXPECTED["review_backlog"]}}
    expected["review_backlog"].pop("oldest_age_seconds")
    assert current == expected
    assert [entry["figures"]["profiles"] for entry in body["history"]] == [5, 5]
    first.refresh_from_db()
    assert [entry["captured_at"] for entry in body["history"]] == [
        first.captured_at.isoformat().replace("+00:00", "Z"),
        second.captured_at.isoformat().replace("+00:00", "Z"),
    ]

    assert len(api("marketer").get(PATH, {"history": 1}).json()["history"]) == 1
    assert api("marketer").get(PATH, {"history": 0}).json()["history"] == []


@pytest.mark.parametrize("value", ["-1", "abc", "2001"])
def test_history_must_be_a_small_whole_number(api, value):
    response = api("marketer").get(PATH, {"history": value})
    assert response.status_code == 400
    assert response.json() == {"history": ["A whole number from 0 to 2000."]}

"""Bugs the schema fuzzer found in the REST API, each pinned with the input that answered 500."""

import pytest

from cdp_site.roles import ROLES

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/api/v1/sync-runs/null,null/records/", "/api/v1/sync-runs/abc/"])
def test_malformed_sync_run_id_is_404_json(api, path):
    response = api(*ROLES).get(path)
    assert response.status_code == 404 and "detail" in response.json()


def test_retry_failed_with_a_malformed_run_id_is_404_json(api):
    response = api(*ROLES).post("/api/v1/sync-runs/null,null/retry-failed/")
    assert response.status_code == 404 and "detail" in response.json()


def test_computed_trait_without_event_type_is_validated_not_a_500(api):
    response = api(*ROLES).post(
        "/api/v1/computed-traits/", {"key": "visits", "name": "Visits", "kind": "count"}, format="json"
    )
    assert response.status_code == 400 and response.json()["definition"], response.content


@pytest.mark.parametrize("value", ["-3.601815388055901e+274", "9223372036854775808", "1.5", "abc", "0"])
def test_merges_profile_filter_out_of_range_is_400_naming_the_field(api, value):
    response = api(*ROLES).get("/api/v1/merges/", {"profile": value})
    assert response.status_code == 400 and "profile" in response.json()


def test_a_path_that_routes_nowhere_answers_json_under_the_machine_prefixes_and_html_elsewhere(client):
    for path in ("/api/v1/identity-links/0.5/", "/v1/nowhere", "/webhooks/"):
        response = client.get(path)
        assert response.status_code == 404 and response["Content-Type"] == "application/json", path
        assert response.json() == {"code": "not_found", "message": f"No endpoint at {path}."}
    page = client.get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")

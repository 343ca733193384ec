"""Fuzz every REST operation from the OpenAPI schema the app serves: no 5xx, and every 4xx is JSON
that says what was wrong. Bounded (a few derandomized examples per operation, no deadline flakes)
so it runs in `make test` on both databases."""

import json

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

pytestmark = [pytest.mark.fuzz, pytest.mark.django_db]

# Loaded once per test process through the WSGI app; the schema view needs no credentials.
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application(), headers={"Accept": "application/json"})
# Property-based fuzzing (valid and invalid inputs) only: the coverage phase's exhaustive boundary
# cases cost ~15 s per operation, too much for every `make test`.
schema.config.phases.update(phases=["examples", "fuzzing"])

MAX_EXAMPLES = 8
# Prometheus scrapes /metrics as text; its errors are text too (still never 5xx).
TEXT_ENDPOINTS = {"/metrics"}


def errors_are_json_with_a_reason(ctx, response, case):
    """A 4xx is application/json and names what was wrong (DRF's `detail`, field errors, or {code, message})."""
    if not 400 <= response.status_code < 500 or case.operation.path in TEXT_ENDPOINTS:
        return None
    content_type = ";".join(response.headers.get("content-type", []))
    assert content_type.startswith("application/json"), f"{response.status_code} answered with {content_type!r}"
    body = json.loads(response.content)
    assert body, f"{response.status_code} with an empty JSON body"
    if isinstance(body, dict):
        text = json.dumps(body)
        assert len(text) > 10, f"{response.status_code} body says too little: {text}"
    return None


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_rest_api_answers_no_5xx_and_json_errors(case, all_roles_token, wsgi_keeps_test_connection):
    response = case.call(headers={"Authorization": f"Token {all_roles_token}"})
    case.validate_response(response, checks=[not_a_server_error, errors_are_json_with_a_reason])

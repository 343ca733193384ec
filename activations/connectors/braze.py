"""Braze: user attributes through /users/track, audience membership as an array custom attribute,
deletion through /users/delete.

/users/track takes up to 75 attribute objects per request and answers 201 `{"message": "success"}`;
objects it refuses come back as `{"errors": [{"type", "input_array": "attributes", "index"}]}` where
`index` counts inside the `attributes` array, so exactly those records fail and the rest are applied.
A 400 whose errors name no object (a fatal error: bad JSON, bad key...) fails the whole request.
"""

from __future__ import annotations

import httpx

from activations import domain
from activations.connectors.base import Connector, Outbound, PreparedRequest, RecordResult, excerpt

TRACK_BATCH = 75  # attribute objects per /users/track request
DELETE_BATCH = 50  # external_ids per /users/delete request
# An external_id that no profile should have: the connection test's no-op update targets it.
TEST_EXTERNAL_ID = "cdp-connection-test"


def _chunks(items: list, size: int) -> list[list]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def response_json(response: httpx.Response):
    try:
        return response.json()
    except ValueError:
        return None


class BrazeConnector(Connector):
    kind = "braze"
    label = "Braze"
    default_base_url = "https://rest.iad-01.braze.com"  # the REST endpoint of the instance (US-01 by default)
    max_batch_size = TRACK_BATCH
    # /users/track allows 50,000 requests a minute per workspace (~830/s) and /users/delete 20,000 a
    # minute shared with the alias endpoints. 50/s is 3,750 profiles a second at 75 per request: far
    # under both, so other integrations of the same workspace keep their share. Raise it if needed.
    default_rate_limit = 50.0
    operations = frozenset({domain.UPSERT, domain.UPDATE, domain.REMOVE, domain.DELETE})
    channel = "email"
    required_secrets = ("api_key",)
    deletion = (
        "POST /users/delete with the external_ids (at most 50 per request); Braze deletes the user profiles "
        "permanently, and that cannot be undone"
    )

    @property
    def audience_attribute(self) -> str:
        return self.settings.get("audience_attribute") or "cdp_audiences"

    def _headers(self) -> dict:
        return {
            "content-type": "application/json",
            "authorization": f"Bearer {self.secrets.get('api_key', '')}",
        }

    def _request(self, path: str, body: dict, record_ids: list[int]) -> PreparedRequest:
        return PreparedRequest(
            method="POST",
            url=self.url(path),
            record_ids=record_ids,
            json=body,
            headers=self._headers(),
            secret_headers=self.secret_headers,
        )

    def attribute_object(self, operation: str, record: Outbound) -> dict:
        attributes: dict = {}
        if operation in (domain.UPSERT, domain.UPDATE):
            attributes.update(record.fields)
        attributes["external_id"] = record.key
        if operation == domain.UPDATE:
            attributes["_update_existing_only"] = True
        if record.audience:
            change = "remove" if operation == domain.REMOVE else "add"
            attributes[self.audience_attribute] = {change: [record.audience]}
        if operation == domain.REMOVE:
            # Removing must not create a profile Braze does not have (track creates by default).
            attributes["_update_existing_only"] = True
        return attributes

    def prepare(self, operation: str, records: list[Outbound]) -> list[PreparedRequest]:
        if operation not in self.operations:
            raise domain.ContractViolation(f"{self.label} cannot {operation}")
        if operation == domain.DELETE:
            size = min(self.batch_size, DELETE_BATCH)
            return [
                self._request("/users/delete", {"external_ids": [r.key for r in chunk]}, [r.id for r in chunk])
                for chunk in _chunks(records, size)
            ]
        return [
            self._request(
                "/users/track",
                {"attributes": [self.attribute_object(operation, record) for record in chunk]},
                [record.id for record in chunk],
            )
            for chunk in _chunks(records, self.batch_size)
        ]

    def test_request(self) -> PreparedRequest:
        # A no-op with the same permission the sync needs (users.track): an attributes object that
        # only names a user and may update existing users only, so nothing is created or changed.
        body = {"attributes": [{"external_id": TEST_EXTERNAL_ID, "_update_existing_only": True}]}
        return self._request("/users/track", body, [])

    def parse(self, request: PreparedRequest, response: httpx.Response) -> list[RecordResult]:
        status = response.status_code
        body = response_json(response)
        body = body if isinstance(body, dict) else {}
        failed: dict[int, str] = {}
        per_object = request.url.endswith("/users/track")
        for error in (body.get("errors") or []) if per_object else []:
            if not isinstance(error, dict):
                continue
            index = error.get("index")
            if error.get("input_array", "attributes") != "attributes" or not isinstance(index, int):
                continue
            if 0 <= index < len(request.record_ids):
                reason = str(error.get("type") or error.get("message") or "refused by Braze")
                failed[index] = f"{failed[index]}; {reason}" if index in failed else reason
        if not (200 <= status < 300) and not failed:
            message = excerpt(response)
            return [RecordResult(id=rid, ok=False, status_code=status, message=message) for rid in request.record_ids]
        accepted = str(body.get("message", "")) if 200 <= status < 300 else ""
        return [
            RecordResult(id=rid, ok=False, status_code=status, message=failed[index])
            if index in failed
            else RecordResult(id=rid, ok=True, status_code=status, message=accepted)
            for index, rid in enumerate(request.record_ids)
        ]

"""HubSpot contacts: batch upsert by a unique property, GDPR delete.

`POST /crm/v3/objects/contacts/batch/upsert` takes up to 100 inputs
`{"idProperty", "id", "properties"}` and answers 200 `{"status": "COMPLETE", "results": [...]}`, or
207 multi-status when some inputs failed: `"errors": [{"status": "error", "category", "message",
"context": {"ids": [...]}}]` names the failed inputs by their id, and only those fail here.

Update-only is not offered: HubSpot's batch *update* accepts `idProperty` only for properties with
unique values, and a contact's email is not one (HubSpot answers "Unable to perform update/upsert by
non-unique property"); removing from an audience would need HubSpot lists, which this connector does
not manage.
"""

from __future__ import annotations

import json

import httpx

from activations import domain
from activations.connectors.base import Connector, Outbound, PreparedRequest, RecordResult, excerpt

UPSERT_BATCH = 100
# The identifiers the GDPR delete endpoint accepts: the record id, or the email with idProperty=email.
GDPR_ID_PROPERTIES = frozenset({"email", "hs_object_id"})


def response_json(response: httpx.Response):
    try:
        return response.json()
    except ValueError:
        return None


def property_value(value) -> str:
    """HubSpot property values are strings: "" clears a property, booleans are "true"/"false"."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def describe(error: dict) -> str:
    category, message = error.get("category") or "", error.get("message") or ""
    return f"{category}: {message}".strip(": ") or "refused by HubSpot"


class HubSpotConnector(Connector):
    kind = "hubspot"
    label = "HubSpot"
    default_base_url = "https://api.hubapi.com"
    max_batch_size = UPSERT_BATCH
    # Private apps get 100 requests per rolling 10 seconds (190 on Professional and Enterprise);
    # 10 a second with a burst of one stays within the lower figure.
    default_rate_limit = 10.0
    operations = frozenset({domain.UPSERT, domain.DELETE})
    channel = "crm"
    required_secrets = ("access_token",)
    deletion = (
        "POST /crm/v3/objects/contacts/gdpr-delete with the contact's email (idProperty email), one request "
        "per person: HubSpot permanently deletes the contact and blocks the email from being re-created; "
        "a 404 (already gone) counts as done"
    )

    @property
    def id_property(self) -> str:
        return self.settings.get("id_property") or "email"

    def check_configuration(self) -> list[str]:
        problems = super().check_configuration()
        if domain.DELETE in (self.destination.operations or []) and self.id_property not in GDPR_ID_PROPERTIES:
            problems.append(
                f"HubSpot's GDPR delete finds contacts by email or record id, not by {self.id_property!r}: "
                "use id_property 'email' or do not allow delete"
            )
        return problems

    def _request(self, method: str, path: str, record_ids: list[int], body=None) -> PreparedRequest:
        headers = {"authorization": f"Bearer {self.secrets.get('access_token', '')}", "accept": "application/json"}
        if body is not None:
            headers["content-type"] = "application/json"
        return PreparedRequest(
            method=method,
            url=self.url(path),
            record_ids=record_ids,
            json=body,
            headers=headers,
            secret_headers=self.secret_headers,
        )

    def upsert_input(self, record: Outbound) -> dict:
        return {
            "idProperty": self.id_property,
            "id": str(record.key),
            "properties": {name: property_value(value) for name, value in record.fields.items()},
        }

    def prepare(self, operation: str, records: list[Outbound]) -> list[PreparedRequest]:
        if operation not in self.operations:
            raise domain.ContractViolation(f"{self.label} cannot {operation} (it supports upsert and delete)")
        if operation == domain.DELETE:
            return [
                self._request(
                    "POST",
                    "/crm/v3/objects/contacts/gdpr-delete",
                    [record.id],
                    {"objectId": str(record.key), "idProperty": self.id_property},
                )
                for record in records
            ]
        size = self.batch_size
        return [
            self._request(
                "POST",
                "/crm/v3/objects/contacts/batch/upsert",
                [record.id for record in chunk],
                {"inputs": [self.upsert_input(record) for record in chunk]},
            )
            for chunk in (records[start : start + size] for start in range(0, len(records), size))
        ]

    def test_request(self) -> PreparedRequest:
        return self._request("GET", "/crm/v3/objects/contacts?limit=1", [])

    # -- answers --------------------------------------------------------------------------------
    def parse(self, request: PreparedRequest, response: httpx.Response) -> list[RecordResult]:
        status = response.status_code
        if request.url.endswith("/gdpr-delete"):
            rid = request.record_ids[0]
            if 200 <= status < 300:
                return [RecordResult(id=rid, ok=True, status_code=status, message="deleted (GDPR)")]
            if status == 404:
                return [RecordResult(id=rid, ok=True, status_code=status, message="not found: already deleted")]
            return [RecordResult(id=rid, ok=False, status_code=status, message=self._message(response))]
        body = response_json(response)
        body = body if isinstance(body, dict) else {}
        if not (200 <= status < 300):
            message = self._message(response)
            return [RecordResult(id=rid, ok=False, status_code=status, message=message) for rid in request.record_ids]
        keys = [str(item.get("id", "")).lower() for item in (request.json or {}).get("inputs", [])]
        failed: dict[int, str] = {}
        unplaced: list[str] = []
        for error in body.get("errors") or []:
            if not isinstance(error, dict):
                continue
            context = error.get("context") or {}
            named = {str(value).lower() for value in (context.get("ids") or []) if value is not None}
            indexes = [index for index, key in enumerate(keys) if key in named]
            if not indexes:
                unplaced.append(describe(error))
            for index in indexes:
                failed[index] = f"{failed[index]}; {describe(error)}" if index in failed else describe(error)
        if unplaced:
            # An error that names no input we sent: the inputs that have no result are the ones it is about.
            returned = self._returned_keys(body)
            for index, key in enumerate(keys):
                if index not in failed and returned is not None and key not in returned:
                    failed[index] = "; ".join(unplaced)
        return [
            RecordResult(id=rid, ok=False, status_code=status, message=failed[index])
            if index in failed
            else RecordResult(id=rid, ok=True, status_code=status)
            for index, rid in enumerate(request.record_ids)
        ]

    def _returned_keys(self, body: dict) -> set[str] | None:
        """The id property's values of the records HubSpot returned, or None if it did not echo them."""
        values = set()
        for result in body.get("results") or []:
            value = ((result or {}).get("properties") or {}).get(self.id_property)
            if value is None:
                return None
            values.add(str(value).lower())
        return values

    @staticmethod
    def _message(response: httpx.Response) -> str:
        body = response_json(response)
        if isinstance(body, dict) and body.get("message"):
            return f"HTTP {response.status_code} {describe(body)}"
        return excerpt(response)

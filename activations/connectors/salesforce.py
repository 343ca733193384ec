"""Salesforce: upsert by an external ID field with sObject Collections, delete by external ID.

`PATCH /services/data/vXX.X/composite/sobjects/{sObject}/{externalIdField}` upserts up to 200
records (API 46.0 and later) and, with `allOrNone: false`, answers 200 with one UpsertResult per
record in request order: `{"id", "success", "errors": [{"statusCode", "message", "fields"}], "created"}`.
A request that is not well formed answers 400 with `[{"message", "errorCode"}]` for all of them.

Update-only is not offered: upserting by external ID creates missing records, and the collection
*update* needs Salesforce record ids, which this platform does not hold; doing it properly would mean
a lookup per record (composite GET then PATCH), so the contract cannot choose `update` here.
Removing from an audience is not offered either: Salesforce has no named audience to leave.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx

from activations import domain
from activations.connectors.base import Connector, Outbound, PreparedRequest, RecordResult, excerpt

COLLECTION_BATCH = 200
# Per-record error codes Salesforce documents as transient (another transaction holds the row).
TRANSIENT_CODES = frozenset({"UNABLE_TO_LOCK_ROW"})


def response_json(response: httpx.Response):
    try:
        return response.json()
    except ValueError:
        return None


def describe_errors(errors) -> str:
    """Salesforce's error objects as one line: `CODE: message (fields)`."""
    parts = []
    for error in errors or []:
        if not isinstance(error, dict):
            parts.append(str(error))
            continue
        code = error.get("statusCode") or error.get("errorCode") or "ERROR"
        text = f"{code}: {error.get('message', '')}".strip()
        if error.get("fields"):
            text += f" ({', '.join(map(str, error['fields']))})"
        parts.append(text)
    return "; ".join(parts)


def error_codes(errors) -> set[str]:
    return {str(e.get("statusCode") or e.get("errorCode")) for e in errors or [] if isinstance(e, dict)}


class SalesforceConnector(Connector):
    kind = "salesforce"
    label = "Salesforce"
    default_base_url = ""  # the org's instance URL (https://<domain>.my.salesforce.com) is required
    max_batch_size = COLLECTION_BATCH
    # Salesforce limits API calls per org per 24 hours (shared by every integration), not per second;
    # 5 requests a second is up to 1,000 records a second while leaving room for the org's other users.
    default_rate_limit = 5.0
    operations = frozenset({domain.UPSERT, domain.DELETE})
    channel = "crm"
    required_settings = ("external_id_field",)
    required_secrets = ("access_token",)
    deletion = (
        "DELETE /services/data/vXX.X/sobjects/{sObject}/{external_id_field}/{key}, one request per person; "
        "a 404 (already gone) counts as done. The record goes to the org's Recycle Bin (15 days) before it "
        "is purged"
    )

    # -- configuration ------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return (self.destination.base_url or "").rstrip("/")

    @property
    def sobject(self) -> str:
        return self.settings.get("sobject") or "Contact"

    @property
    def external_id_field(self) -> str:
        return self.settings.get("external_id_field") or ""

    @property
    def api_version(self) -> str:
        return str(self.settings.get("api_version") or "60.0").lstrip("vV")

    def check_configuration(self) -> list[str]:
        problems = super().check_configuration()
        if not self.destination.base_url:
            problems.append("Salesforce needs the org's instance URL as base URL (https://<domain>.my.salesforce.com)")
        try:
            if float(self.api_version) < 46.0:
                problems.append("upserting sObject Collections needs API version 46.0 or later")
        except ValueError:
            problems.append(f"api_version {self.api_version!r} is not a version like 60.0")
        return problems

    def _data(self, path: str) -> str:
        return self.url(f"/services/data/v{self.api_version}{path}")

    def _headers(self, *, body: bool) -> dict:
        headers = {"authorization": f"Bearer {self.secrets.get('access_token', '')}", "accept": "application/json"}
        if body:
            headers["content-type"] = "application/json"
        return headers

    # -- requests -------------------------------------------------------------------------------
    def record_body(self, record: Outbound) -> dict:
        body = {"attributes": {"type": self.sobject}}
        body.update({name: value for name, value in record.fields.items() if name.lower() != "id"})
        body[self.external_id_field] = record.key
        return body

    def prepare(self, operation: str, records: list[Outbound]) -> list[PreparedRequest]:
        if operation not in self.operations:
            raise domain.ContractViolation(f"{self.label} cannot {operation} (it supports upsert and delete)")
        if not self.external_id_field:
            raise domain.ContractViolation("Salesforce needs the setting external_id_field")
        sobject, field = quote(self.sobject, safe=""), quote(self.external_id_field, safe="")
        if operation == domain.DELETE:
            return [
                PreparedRequest(
                    method="DELETE",
                    url=self._data(f"/sobjects/{sobject}/{field}/{quote(str(record.key), safe='')}"),
                    record_ids=[record.id],
                    headers=self._headers(body=False),
                    secret_headers=self.secret_headers,
                )
                for record in records
            ]
        size = self.batch_size
        return [
            PreparedRequest(
                method="PATCH",
                url=self._data(f"/composite/sobjects/{sobject}/{field}"),
                record_ids=[record.id for record in chunk],
                json={"allOrNone": False, "records": [self.record_body(record) for record in chunk]},
                headers=self._headers(body=True),
                secret_headers=self.secret_headers,
            )
            for chunk in (records[start : start + size] for start in range(0, len(records), size))
        ]

    def test_request(self) -> PreparedRequest:
        return PreparedRequest(
            method="GET",
            url=self._data("/limits"),
            record_ids=[],
            headers=self._headers(body=False),
            secret_headers=self.secret_headers,
        )

    # -- answers --------------------------------------------------------------------------------
    def parse(self, request: PreparedRequest, response: httpx.Response) -> list[RecordResult]:
        status = response.status_code
        if request.method == "DELETE":
            return [self._delete_result(request, response)]
        body = response_json(response)
        if not (200 <= status < 300) or not isinstance(body, list):
            message = describe_errors(body) if isinstance(body, list) and body else excerpt(response)
            return [RecordResult(id=rid, ok=False, status_code=status, message=message) for rid in request.record_ids]
        results = []
        for index, rid in enumerate(request.record_ids):
            item = body[index] if index < len(body) and isinstance(body[index], dict) else None
            if item is None:
                results.append(RecordResult(id=rid, ok=False, status_code=status, message="no result for this record"))
            elif item.get("success"):
                verb = "created" if item.get("created") else "updated"
                results.append(
                    RecordResult(id=rid, ok=True, status_code=status, message=f"{verb} {item.get('id', '')}")
                )
            else:
                errors = item.get("errors")
                results.append(
                    RecordResult(
                        id=rid,
                        ok=False,
                        retry=bool(error_codes(errors) & TRANSIENT_CODES),
                        status_code=status,
                        message=describe_errors(errors) or "refused by Salesforce",
                    )
                )
        return results

    def _delete_result(self, request: PreparedRequest, response: httpx.Response) -> RecordResult:
        rid, status = request.record_ids[0], response.status_code
        if 200 <= status < 300:
            return RecordResult(id=rid, ok=True, status_code=status, message="deleted")
        if status == 404:
            return RecordResult(id=rid, ok=True, status_code=status, message="not found: already deleted")
        body = response_json(response)
        if status == 300:
            message = "more than one record has this external ID; nothing was deleted"
        else:
            message = describe_errors(body) if isinstance(body, list) and body else excerpt(response)
        return RecordResult(id=rid, ok=False, status_code=status, message=message)

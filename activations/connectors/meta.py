"""Meta (Facebook/Instagram) customer-list custom audiences: add and remove hashed people.

`POST /{version}/{audience_id}/users` adds and `DELETE` on the same path removes, each with up to
10,000 rows: `{"session": {...}, "payload": {"schema": ["EMAIL", "PHONE", ...], "data": [[...], ...]}}`.
Every identifier except EXTERN_ID and MADID must be the SHA-256 hex of the value normalised as Meta
says (email trimmed and lower-case, phone as digits with the country code, names lower-case...);
this connector never sends cleartext: `prepare` refuses any row whose PII is not a hash.

Meta answers `{"audience_id", "session_id", "num_received", "num_invalid_entries",
"invalid_entry_samples"}` for the whole request (it does not say which rows were invalid), or
`{"error": {"message", "type", "code", "error_subcode", "is_transient"}}`.
"""

from __future__ import annotations

import hashlib
import re

import httpx

from activations import domain
from activations.connectors.base import Connector, Outbound, PreparedRequest, RecordResult, excerpt

ROWS_PER_REQUEST = 10_000
SCHEMA_KEYS = (
    "EMAIL",
    "PHONE",
    "FN",
    "LN",
    "FI",
    "GEN",
    "DOBY",
    "DOBM",
    "DOBD",
    "CT",
    "ST",
    "ZIP",
    "COUNTRY",
    "MADID",
    "EXTERN_ID",
)
UNHASHED_KEYS = frozenset({"EXTERN_ID", "MADID"})  # Meta takes these as they are
# Contract field keys (or names) and the multi-key schema column they fill.
ALIASES = {
    "email": "EMAIL",
    "phone": "PHONE",
    "ph": "PHONE",
    "mobile": "PHONE",
    "first_name": "FN",
    "firstname": "FN",
    "fn": "FN",
    "last_name": "LN",
    "lastname": "LN",
    "ln": "LN",
    "first_initial": "FI",
    "fi": "FI",
    "gender": "GEN",
    "gen": "GEN",
    "birth_year": "DOBY",
    "doby": "DOBY",
    "birth_month": "DOBM",
    "dobm": "DOBM",
    "birth_day": "DOBD",
    "dobd": "DOBD",
    "city": "CT",
    "ct": "CT",
    "state": "ST",
    "st": "ST",
    "zip": "ZIP",
    "zip_code": "ZIP",
    "postal_code": "ZIP",
    "postcode": "ZIP",
    "country": "COUNTRY",
    "madid": "MADID",
    "external_id": "EXTERN_ID",
    "extern_id": "EXTERN_ID",
}
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
# Graph API error codes that mean "try again later" (throttling, temporary unavailability).
TRANSIENT_CODES = frozenset({1, 2, 4, 17, 32, 341, 613, 80003})


def schema_key(field: domain.ContractField) -> str | None:
    """The Meta schema column a contract field fills, or None if it has none."""
    if field.name.upper() in SCHEMA_KEYS:
        return field.name.upper()
    return ALIASES.get(field.key.lower()) or ALIASES.get(field.name.lower())


def is_sha256(value) -> bool:
    return isinstance(value, str) and bool(SHA256_HEX.match(value))


def response_json(response: httpx.Response):
    try:
        return response.json()
    except ValueError:
        return None


class MetaAudienceConnector(Connector):
    kind = "meta_audience"
    label = "Meta custom audience"
    default_base_url = "https://graph.facebook.com"
    max_batch_size = ROWS_PER_REQUEST
    # The Marketing API throttles by a per-ad-account score rather than a fixed rate; one request a
    # second is up to 10,000 people a second and stays well clear of it.
    default_rate_limit = 1.0
    operations = frozenset({domain.UPSERT, domain.UPDATE, domain.REMOVE})
    pii_modes = frozenset({domain.HASHED})
    channel = "advertising"
    required_settings = ("audience_id",)
    required_secrets = ("access_token",)
    deletion = (
        "Meta has no delete-person call for custom audiences: a deleted person is removed from the audience "
        "(DELETE /{audience_id}/users with their hashed identifiers); Meta holds only the hashes and "
        "discards unmatched ones"
    )

    @property
    def api_version(self) -> str:
        version = str(self.settings.get("api_version") or "v19.0")
        return version if version.startswith("v") else f"v{version}"

    @property
    def audience_id(self) -> str:
        return str(self.settings.get("audience_id") or "")

    def columns(self) -> list[tuple[domain.ContractField, str]]:
        """Contract fields that fill a schema column, in contract order, the first one per column."""
        seen, columns = set(), []
        for field in self.destination.contract:
            key = schema_key(field)
            if key and key not in seen:
                seen.add(key)
                columns.append((field, key))
        return columns

    def check_configuration(self) -> list[str]:
        problems = super().check_configuration()
        try:
            contract = self.destination.contract
        except domain.ContractViolation as error:
            return [*problems, str(error)]
        used = {field.name for field, _ in self.columns()}
        for field in contract:
            if field.name not in used:
                key = schema_key(field)
                reason = f"a second {key} column" if key else "no Meta identifier"
                problems.append(f"field {field.name!r} is not sent to Meta ({reason})")
        if not used:
            problems.append("the contract has no field Meta can match people on (email, phone, names...)")
        return problems

    def _request(self, method: str, path: str, record_ids: list[int], body=None) -> PreparedRequest:
        headers = {"authorization": f"Bearer {self.secrets.get('access_token', '')}", "accept": "application/json"}
        if body is not None:
            headers["content-type"] = "application/json"
        return PreparedRequest(
            method=method,
            url=self.url(f"/{self.api_version}{path}"),
            record_ids=record_ids,
            json=body,
            headers=headers,
            secret_headers=self.secret_headers,
        )

    def _values(self, record: Outbound) -> dict:
        """The record's fields; the key fills its own field when the fields leave it out (a remove)."""
        values = dict(record.fields)
        name = self.destination.idempotency_key
        if name and values.get(name) in (None, ""):
            values[name] = record.key
        return values

    def _must_hash(self, columns) -> set[str]:
        """Every PII field, and every field of a column Meta wants hashed."""
        names = {field.name for field in self.destination.contract if field.pii}
        return names | {field.name for field, key in columns if key not in UNHASHED_KEYS}

    def _refuse_cleartext(self, record: Outbound, values: dict, must_hash: set[str]) -> None:
        """Each value that must be hashed is a SHA-256 hex (or empty)."""
        checks = [(name, values.get(name)) for name in sorted(must_hash)]
        if self.destination.idempotency_key in must_hash:
            checks.append((f"{self.destination.idempotency_key} (key)", record.key))
        for name, value in checks:
            if value not in (None, "") and not is_sha256(value):
                # Never echo the value: it may be the cleartext we are refusing to send.
                raise domain.ContractViolation(
                    f"record {record.id}: field {name!r} is not a SHA-256 hash; Meta takes hashed PII only"
                )

    def prepare(self, operation: str, records: list[Outbound]) -> list[PreparedRequest]:
        if operation not in self.operations:
            raise domain.ContractViolation(f"{self.label} cannot {operation} (it supports upsert, update and remove)")
        if self.destination.pii_mode != domain.HASHED:
            raise domain.ContractViolation("Meta takes hashed PII only: set the destination's PII mode to hashed")
        columns = self.columns()
        must_hash = self._must_hash(columns)
        rows = []
        for record in records:
            values = self._values(record)
            self._refuse_cleartext(record, values, must_hash)
            rows.append((record, values))
        method = "DELETE" if operation == domain.REMOVE else "POST"  # upsert and update both add
        requests, size = [], self.batch_size
        for start in range(0, len(rows), size):
            chunk = rows[start : start + size]
            # Only the columns this batch has values for: a remove carries just the key.
            present = [
                (f, key) for f, key in columns if any(values.get(f.name) not in (None, "") for _, values in chunk)
            ]
            if not present:
                raise domain.ContractViolation("no Meta identifier to send for these records")
            data = [[self._cell(values.get(f.name)) for f, _ in present] for _, values in chunk]
            body = {
                "session": self._session([record.idempotency_key for record, _ in chunk]),
                "payload": {"schema": [key for _, key in present], "data": data},
            }
            requests.append(self._request(method, f"/{self.audience_id}/users", [r.id for r, _ in chunk], body))
        return requests

    @staticmethod
    def _cell(value) -> str:
        return "" if value is None else str(value)

    @staticmethod
    def _session(idempotency_keys: list[str]) -> dict:
        """One session per request, its id derived from what the request carries: a resend of the
        same batch is the same session."""
        digest = hashlib.sha256("\n".join(idempotency_keys).encode()).hexdigest()
        return {
            "session_id": int(digest[:15], 16),
            "batch_seq": 1,
            "last_batch_flag": True,
            "estimated_num_total": len(idempotency_keys),
        }

    def test_request(self) -> PreparedRequest:
        return self._request("GET", f"/{self.audience_id}?fields=id,name", [])

    def parse(self, request: PreparedRequest, response: httpx.Response) -> list[RecordResult]:
        status = response.status_code
        body = response_json(response)
        body = body if isinstance(body, dict) else {}
        if 200 <= status < 300 and "error" not in body:
            message = f"received {body.get('num_received', '?')}, invalid {body.get('num_invalid_entries', 0)}"
            return [RecordResult(id=rid, ok=True, status_code=status, message=message) for rid in request.record_ids]
        error = body.get("error") if isinstance(body.get("error"), dict) else None
        if error:
            retry = bool(error.get("is_transient")) or error.get("code") in TRANSIENT_CODES
            parts = [str(error.get("message") or "refused by Meta")]
            if error.get("error_user_msg"):
                parts.append(str(error["error_user_msg"]))
            code = f"{error.get('type', 'Error')} {error.get('code', '')}".strip()
            message = f"{code}: {' '.join(parts)}"
        else:
            retry, message = False, excerpt(response)
        return [
            RecordResult(id=rid, ok=False, retry=retry, status_code=status, message=message)
            for rid in request.record_ids
        ]

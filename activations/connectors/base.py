"""One interface for every destination: build the requests, read the answer per record.

A connector never sends by itself: `prepare` turns intended operations into requests (so a dry run
can show exactly what would be sent) and `parse` reads a response into one result per record.
Rate limiting, 429 and Retry-After, timeouts, retries and bookkeeping live in `delivery`, the same
for every destination.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx

from activations import domain

REDACTED = "••••"


@dataclass
class Outbound:
    """One intended operation as the connector receives it."""

    id: int  # SyncRecord or TriggerSend id
    operation: str
    key: str  # the idempotency key's value (hashed if the contract hashes that field)
    fields: dict  # contract field name -> value, PII hashed where the destination takes hashes
    idempotency_key: str  # unique per intended operation: resending it cannot apply twice
    audience: str = ""  # the sync's or trigger's slug, for destinations that hold named audiences


@dataclass
class PreparedRequest:
    method: str
    url: str
    record_ids: list[int]
    json: Any = None
    content: bytes | None = None
    headers: dict = field(default_factory=dict)
    secret_headers: frozenset = frozenset()  # header names shown redacted

    def body_bytes(self) -> bytes:
        if self.content is not None:
            return self.content
        if self.json is None:
            return b""
        return json.dumps(self.json, separators=(",", ":"), default=str).encode()

    def display(self) -> dict:
        """What a dry run shows: method, URL, headers with secrets redacted, body."""
        headers = {
            name: (REDACTED if name.lower() in self.secret_headers else value) for name, value in self.headers.items()
        }
        body = self.json if self.json is not None else (self.content or b"").decode("utf-8", "replace")
        return {"method": self.method, "url": self.url, "headers": headers, "body": body}


@dataclass
class RecordResult:
    id: int
    ok: bool
    retry: bool = False
    status_code: int | None = None
    message: str = ""


class ConnectorError(Exception):
    """Misconfiguration caught before sending (missing setting or secret)."""


class Connector:
    kind: ClassVar[str]
    label: ClassVar[str]
    default_base_url: ClassVar[str] = ""
    max_batch_size: ClassVar[int] = 1
    default_rate_limit: ClassVar[float] = 10.0  # requests per second
    operations: ClassVar[frozenset] = frozenset({domain.UPSERT})
    pii_modes: ClassVar[frozenset] = frozenset({domain.CLEARTEXT, domain.HASHED})
    channel: ClassVar[str] = "crm"
    required_settings: ClassVar[tuple] = ()
    required_secrets: ClassVar[tuple] = ()
    secret_headers: ClassVar[frozenset] = frozenset({"authorization"})
    # Template fields a trigger fills in for this destination (e.g. Twilio's To and Body).
    message_fields: ClassVar[tuple] = ()
    retry_policy: ClassVar[str] = (
        "5xx, timeouts and 429 retried with exponential backoff and jitter; 429 waits Retry-After"
    )
    deletion: ClassVar[str] = ""

    def __init__(self, destination):
        self.destination = destination
        self.settings = destination.settings or {}
        self.secrets = destination.secret_values

    # -- configuration ------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return (self.destination.base_url or self.default_base_url).rstrip("/")

    @property
    def batch_size(self) -> int:
        return max(1, min(self.destination.batch_size or self.max_batch_size, self.max_batch_size))

    def check_configuration(self) -> list[str]:
        problems = [f"setting {name!r} is missing" for name in self.required_settings if not self.settings.get(name)]
        problems += [f"secret {name!r} is missing" for name in self.required_secrets if not self.secrets.get(name)]
        if self.destination.pii_mode not in self.pii_modes:
            problems.append(f"{self.label} takes PII only as {', '.join(sorted(self.pii_modes))}")
        return problems

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    # -- requests ------------------------------------------------------------------------------
    def prepare(self, operation: str, records: list[Outbound]) -> list[PreparedRequest]:
        raise NotImplementedError

    def test_request(self) -> PreparedRequest:
        """A harmless authenticated request that proves the address and credentials work."""
        raise NotImplementedError

    def parse(self, request: PreparedRequest, response: httpx.Response) -> list[RecordResult]:
        """Default: the whole request succeeded or failed together."""
        ok = 200 <= response.status_code < 300
        message = "" if ok else _excerpt(response)
        return [
            RecordResult(id=rid, ok=ok, status_code=response.status_code, message=message) for rid in request.record_ids
        ]

    def deliver(self, client: httpx.Client, request: PreparedRequest, timeout: float) -> httpx.Response:
        return client.request(
            request.method,
            request.url,
            content=request.body_bytes() if (request.json is not None or request.content is not None) else None,
            headers=request.headers,
            timeout=timeout,
        )

    def is_success(self, response: httpx.Response) -> bool:
        return 200 <= response.status_code < 300


def _excerpt(response: httpx.Response, limit: int = 500) -> str:
    text = response.text.strip()
    return f"HTTP {response.status_code}: {text[:limit]}" if text else f"HTTP {response.status_code}"


def excerpt(response: httpx.Response, limit: int = 500) -> str:
    return _excerpt(response, limit)

"""Generic webhook: one JSON message per operation, signed with Standard Webhooks headers.

`webhook-id` is the operation's idempotency key, so a receiver that deduplicates on it (as the
specification asks) applies a resent message once.
"""

import base64
import binascii
import hashlib
import hmac
import json
import time

from django.utils import timezone

from activations import domain
from activations.connectors.base import Connector, Outbound, PreparedRequest

EVENT_TYPES = {
    domain.UPSERT: "profile.upserted",
    domain.UPDATE: "profile.updated",
    domain.REMOVE: "profile.removed",
    domain.DELETE: "profile.deleted",
}


def signing_key(secret: str) -> bytes:
    encoded = secret[len("whsec_") :] if secret.startswith("whsec_") else secret
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error:
        return encoded.encode()


def sign(*, secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(signing_key(secret), signed, hashlib.sha256).digest()).decode()


class WebhookConnector(Connector):
    kind = "webhook"
    label = "Webhook"
    max_batch_size = 1
    default_rate_limit = 20.0
    operations = frozenset({domain.UPSERT, domain.UPDATE, domain.REMOVE, domain.DELETE, domain.MESSAGE})
    channel = "webhook"
    required_secrets = ("signing_secret",)
    secret_headers = frozenset({"webhook-signature", "authorization"})
    message_fields = ("type",)
    deletion = "a profile.deleted message with the idempotency key; the receiver deletes the person"

    @property
    def base_url(self) -> str:
        return self.destination.base_url.rstrip("/") if self.destination.base_url else ""

    def check_configuration(self) -> list[str]:
        problems = super().check_configuration()
        if not self.destination.base_url:
            problems.append("a webhook needs its URL (base URL)")
        return problems

    def _signed(self, message_id: str, body: dict, record_ids: list[int]) -> PreparedRequest:
        content = json.dumps(body, separators=(",", ":"), default=str).encode()
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(
                secret=self.secrets.get("signing_secret", ""), message_id=message_id, timestamp=timestamp, body=content
            ),
        }
        return PreparedRequest(
            method="POST",
            url=self.base_url,
            record_ids=record_ids,
            content=content,
            headers=headers,
            secret_headers=self.secret_headers,
        )

    def prepare(self, operation: str, records: list[Outbound]) -> list[PreparedRequest]:
        requests = []
        for record in records:
            if operation == domain.MESSAGE:
                data = dict(record.fields)
                event_type = data.pop("type", None) or "trigger.fired"
            else:
                event_type = EVENT_TYPES[operation]
                data = {"key": record.key}
                if operation in (domain.UPSERT, domain.UPDATE):
                    data.update(record.fields)
            body = {"type": event_type, "timestamp": timezone.now().isoformat(), "data": data}
            requests.append(self._signed(record.idempotency_key, body, [record.id]))
        return requests

    def test_request(self) -> PreparedRequest:
        message_id = f"msg_test_{int(time.time() * 1000)}"
        return self._signed(
            message_id, {"type": "cdp.connection_test", "timestamp": timezone.now().isoformat(), "data": {}}, []
        )

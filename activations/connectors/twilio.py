"""Twilio SMS: one message per request through the Messages resource.

`POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded `To`, `Body` and either `From`
or `MessagingServiceSid`, HTTP Basic auth with the Account SID and auth token. 201 answers the new
Message (`sid`, `status`); an error answers `{"code", "message", "more_info", "status"}`.
"""

from __future__ import annotations

import base64
from urllib.parse import quote, urlencode

import httpx

from activations import domain
from activations.connectors.base import Connector, Outbound, PreparedRequest, RecordResult, excerpt

API_VERSION = "2010-04-01"
IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"


def response_json(response: httpx.Response):
    try:
        return response.json()
    except ValueError:
        return None


class TwilioConnector(Connector):
    kind = "twilio"
    label = "Twilio SMS"
    default_base_url = "https://api.twilio.com"
    max_batch_size = 1
    # A US long code sends about one SMS segment a second; toll-free, short codes and messaging
    # services with several senders go faster: set the destination's rate limit to match.
    default_rate_limit = 1.0
    operations = frozenset({domain.MESSAGE})
    pii_modes = frozenset({domain.CLEARTEXT})  # a hashed phone number cannot be texted
    channel = "sms"
    required_settings = ("account_sid",)
    required_secrets = ("auth_token",)
    message_fields = ("To", "Body")
    deletion = (
        "not applicable: Twilio only sends messages and holds no profiles; message logs that name the person "
        "are deleted in Twilio (DELETE the Message resources, or Twilio's own privacy request process)"
    )

    @property
    def account_sid(self) -> str:
        return self.settings.get("account_sid") or ""

    def check_configuration(self) -> list[str]:
        problems = super().check_configuration()
        if not (self.settings.get("from_number") or self.settings.get("messaging_service_sid")):
            problems.append("set either setting 'from_number' or 'messaging_service_sid' to send from")
        return problems

    def _headers(self) -> dict:
        token = base64.b64encode(f"{self.account_sid}:{self.secrets.get('auth_token', '')}".encode()).decode()
        return {"authorization": f"Basic {token}", "accept": "application/json"}

    def _account_path(self, suffix: str = "") -> str:
        return self.url(f"/{API_VERSION}/Accounts/{quote(self.account_sid, safe='')}{suffix}")

    def form(self, record: Outbound) -> dict:
        to = record.fields.get("To") or record.key
        body = record.fields.get("Body")
        if not to or body in (None, ""):
            raise domain.ContractViolation("a Twilio message needs To and Body")
        form = {"To": str(to), "Body": str(body)}
        if self.settings.get("messaging_service_sid"):
            form["MessagingServiceSid"] = self.settings["messaging_service_sid"]
        if self.settings.get("from_number"):
            form["From"] = self.settings["from_number"]
        if self.settings.get("status_callback"):
            form["StatusCallback"] = self.settings["status_callback"]
        return form

    def prepare(self, operation: str, records: list[Outbound]) -> list[PreparedRequest]:
        if operation != domain.MESSAGE:
            raise domain.ContractViolation(f"{self.label} only sends messages, it cannot {operation}")
        requests = []
        for record in records:
            headers = self._headers()
            headers["content-type"] = "application/x-www-form-urlencoded"
            headers[IDEMPOTENCY_HEADER] = record.idempotency_key
            requests.append(
                PreparedRequest(
                    method="POST",
                    url=self._account_path("/Messages.json"),
                    record_ids=[record.id],
                    content=urlencode(self.form(record)).encode(),
                    headers=headers,
                    secret_headers=self.secret_headers,
                )
            )
        return requests

    def test_request(self) -> PreparedRequest:
        return PreparedRequest(
            method="GET",
            url=self._account_path(".json"),
            record_ids=[],
            headers=self._headers(),
            secret_headers=self.secret_headers,
        )

    def parse(self, request: PreparedRequest, response: httpx.Response) -> list[RecordResult]:
        status = response.status_code
        body = response_json(response)
        body = body if isinstance(body, dict) else {}
        if 200 <= status < 300:
            message = f"sid {body.get('sid', '?')} ({body.get('status', 'accepted')})"
            return [RecordResult(id=rid, ok=True, status_code=status, message=message) for rid in request.record_ids]
        if body.get("code") or body.get("message"):
            message = f"Twilio error {body.get('code', '?')}: {body.get('message', '')}".strip()
            if body.get("more_info"):
                message += f" ({body['more_info']})"
        else:
            message = excerpt(response)
        return [RecordResult(id=rid, ok=False, status_code=status, message=message) for rid in request.record_ids]

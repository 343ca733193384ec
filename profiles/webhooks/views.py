"""POST /webhooks/<source-slug>/: verify as the sender signs, store, answer 200. No processing here."""

from __future__ import annotations

import json
import time

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from profiles.ingest import IncomingEvent, raw_events_store
from profiles.models import Source
from profiles.sources import signing_secrets
from profiles.webhooks import signatures
from profiles.webhooks.signatures import SignatureError

SHOPIFY_HEADERS = (
    "X-Shopify-Topic",
    "X-Shopify-Shop-Domain",
    "X-Shopify-Triggered-At",
    "X-Shopify-API-Version",
    "X-Shopify-Event-Id",
    "X-Shopify-Webhook-Id",
)


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"code": code, "message": message}, status=status)


@csrf_exempt
def webhook_receive(request, slug: str):
    if request.method != "POST":
        return _error(405, "method_not_allowed", "Use POST.")
    source = Source.objects.filter(slug=slug, is_active=True, kind__in=Source.WEBHOOK_KINDS).first()
    if source is None:
        return _error(404, "unknown_source", f"No active webhook source {slug!r}.")
    length = int(request.headers.get("Content-Length") or 0)
    if length > settings.WEBHOOK_MAX_BODY_BYTES:
        return _error(413, "body_too_large", f"Body exceeds {settings.WEBHOOK_MAX_BODY_BYTES} bytes.")
    body = request.body
    if len(body) > settings.WEBHOOK_MAX_BODY_BYTES:
        return _error(413, "body_too_large", f"Body exceeds {settings.WEBHOOK_MAX_BODY_BYTES} bytes.")
    content_type = request.content_type or ""
    if content_type != "application/json" and not content_type.endswith("+json"):
        return _error(415, "unsupported_media_type", "Send JSON (Content-Type: application/json).")
    secrets = signing_secrets(source)
    if not secrets:
        return _error(401, "invalid_signature", "This source has no signing secret configured.")
    try:
        _verify(source.kind, request, body, secrets)
    except SignatureError as error:
        return _error(error.status, error.code, str(error))
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        return _error(400, "invalid_json", f"Body is not valid JSON: {error}")
    if not isinstance(payload, dict):
        return _error(400, "invalid_json", "Body must be a JSON object.")
    try:
        incoming = _incoming(source.kind, request, payload)
    except ValueError as error:
        return _error(400, "missing_event_id", str(error))
    raw_events_store(source=source, events=[incoming])
    return JsonResponse({"received": True})


def _verify(kind: str, request, body: bytes, secrets: list[str]) -> None:
    now, tolerance = time.time(), settings.WEBHOOK_TIMESTAMP_TOLERANCE_SECONDS
    headers = request.headers
    if kind == Source.STRIPE:
        signatures.verify_stripe(
            body=body, header=headers.get("Stripe-Signature", ""), secrets=secrets, now=now, tolerance=tolerance
        )
    elif kind == Source.SHOPIFY:
        signatures.verify_shopify(body=body, header=headers.get("X-Shopify-Hmac-Sha256", ""), secrets=secrets)
    elif kind == Source.MINDBODY:
        signatures.verify_mindbody(body=body, header=headers.get("X-Mindbody-Signature", ""), secrets=secrets)
    else:
        signatures.verify_standard(
            body=body,
            message_id=headers.get("webhook-id", ""),
            timestamp=headers.get("webhook-timestamp", ""),
            header=headers.get("webhook-signature", ""),
            secrets=secrets,
            now=now,
            tolerance=tolerance,
        )


def _incoming(kind: str, request, payload: dict) -> IncomingEvent:
    """The sender's event id (the deduplication key), its topic, and the headers worth keeping."""
    headers = request.headers
    if kind == Source.STRIPE:
        external_id, topic, kept = payload.get("id"), payload.get("type", ""), {}
        if not external_id:
            raise ValueError("Stripe event has no id.")
    elif kind == Source.SHOPIFY:
        external_id = headers.get("X-Shopify-Event-Id") or headers.get("X-Shopify-Webhook-Id")
        topic = headers.get("X-Shopify-Topic", "")
        kept = {name: headers[name] for name in SHOPIFY_HEADERS if name in headers}
        if not external_id:
            raise ValueError("Missing X-Shopify-Event-Id (or X-Shopify-Webhook-Id) header.")
        if not topic:
            raise ValueError("Missing X-Shopify-Topic header.")
    elif kind == Source.MINDBODY:
        # messageId is Mindbody's only replay defence: its timestamp is not signed.
        external_id, topic, kept = payload.get("messageId"), payload.get("eventId", ""), {}
        if not external_id:
            raise ValueError("Mindbody message has no messageId.")
    else:
        external_id = headers.get("webhook-id")
        topic = str(payload.get("type", ""))
        kept = {"webhook-id": external_id, "webhook-timestamp": headers.get("webhook-timestamp", "")}
    return IncomingEvent(external_id=str(external_id)[:255], payload=payload, topic=str(topic), headers=kept)

"""POST /webhooks/<source-slug>/: verify as the sender signs, store, answer 200. No processing here.

Every refusal is a JSON {"code", "message"} 4xx and stores nothing; an unreachable database is 503
with Retry-After (senders retry, and the event id deduplicates what was stored already)."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from profiles.ingest import DATABASE_UNAVAILABLE, IncomingEvent, database_unavailable_response, raw_events_store
from profiles.models import Source
from profiles.sources import signing_secrets
from profiles.strict_json import JsonRejected, json_object_load
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
    try:
        return _receive(request, slug)
    except DATABASE_UNAVAILABLE as error:
        return database_unavailable_response(error, where="webhook")


def _receive(request, slug: str):
    source = Source.objects.filter(slug=slug, is_active=True, kind__in=Source.WEBHOOK_KINDS).first()
    if source is None:
        return _error(404, "unknown_source", f"No active webhook source {slug!r}.")
    too_large = _error(413, "body_too_large", f"Body exceeds {settings.WEBHOOK_MAX_BODY_BYTES} bytes.")
    try:
        length = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        return _error(400, "invalid_content_length", "Content-Length must be a whole number of bytes.")
    if length > settings.WEBHOOK_MAX_BODY_BYTES:
        return too_large
    try:
        body = request.body
    except RequestDataTooBig:
        return too_large
    if len(body) > settings.WEBHOOK_MAX_BODY_BYTES:
        return too_large
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
        payload = json_object_load(body)
    except JsonRejected as error:
        return _error(400, error.code, error.message)
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
    if isinstance(external_id, bool) or not isinstance(external_id, str | int):
        raise ValueError("The event id must be a string.")
    if "\x00" in str(external_id) + str(topic) + "".join(kept.values()):
        raise ValueError("The event id, topic and headers may not contain NUL.")
    return IncomingEvent(external_id=str(external_id)[:255], payload=payload, topic=str(topic), headers=kept)

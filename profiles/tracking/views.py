"""The Segment-compatible HTTP tracking API: /v1/identify|track|page|screen|group|alias|batch.

It authenticates, validates and stores; processing happens in workers. Errors are JSON
{"code": ..., "message": ...}, the shape the SDKs parse. A batch with any invalid message is
refused whole (400), as Segment does, so nothing is half-written. When the database is unreachable
the answer is 503 with Retry-After (SDKs retry; messageId deduplicates what was stored already).

Nothing about a source is kept in the process: its write key, active flag and rate limit are read
from the database on every request, so a change made anywhere applies to the next request on every
machine. The rate limit is counted in Django's cache, shared by every process (Redis, or the database
cache in production without Redis); when that cache is unreachable the limit is skipped, not the event.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
import uuid
import zlib

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from cdp_site.shared_cache import CACHE_UNAVAILABLE, OutageWarning
from profiles.ingest import DATABASE_UNAVAILABLE, IncomingEvent, database_unavailable_response, raw_events_store
from profiles.models import Source
from profiles.sources import source_for_write_key
from profiles.strict_json import JsonRejected, json_object_load

logger = logging.getLogger(__name__)

CALL_TYPES = ("identify", "track", "page", "screen", "group", "alias")
MAX_MESSAGE_ID = 100
IDENTITY_FIELDS = ("userId", "anonymousId", "previousId", "groupId")
OBJECT_FIELDS = ("traits", "properties", "context", "integrations")
_warn_rate_limit_unavailable = OutageWarning(
    logger, "tracking_rate_limit_unavailable error=%s: accepting without a rate limit"
)


class TrackingError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def error_response(error: TrackingError) -> JsonResponse:
    response = JsonResponse({"code": error.code, "message": error.message}, status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    return response


@csrf_exempt
def tracking_call(request, call_type: str):
    if request.method != "POST":
        return JsonResponse({"code": "method_not_allowed", "message": "Use POST."}, status=405)
    try:
        return _tracking_call(request, call_type)
    except DATABASE_UNAVAILABLE as error:
        return database_unavailable_response(error, where="tracking")


def _tracking_call(request, call_type: str):
    try:
        body = _read_body(request)
        document = _parse(body)
        source = _authenticate(request, document)
        messages = _messages(call_type, document, max_batch=settings.TRACKING_MAX_BATCH_BYTES)
        _check_rate(source, len(messages))
    except TrackingError as error:
        return error_response(error)
    received_at = timezone.now()
    received_iso = received_at.isoformat().replace("+00:00", "Z")
    events = []
    for message in messages:
        message["receivedAt"] = received_iso
        events.append(IncomingEvent(external_id=message["messageId"], payload=message, topic=message["type"]))
    raw_events_store(source=source, events=events, received_at=received_at)
    return JsonResponse({"success": True})


def _read_body(request) -> bytes:
    limit = settings.TRACKING_MAX_BATCH_BYTES
    try:
        raw = request.body
    except RequestDataTooBig as error:
        raise TrackingError(400, "batch_too_large", f"Body exceeds {limit // 1024} KB.") from error
    if request.headers.get("Content-Encoding", "").lower() == "gzip":
        # Bounded decompression: a small gzip bomb must not inflate past the batch limit.
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            raw = decompressor.decompress(raw, limit + 1)
        except zlib.error as error:
            raise TrackingError(400, "invalid_gzip", f"Body is not valid gzip: {error}") from error
        if decompressor.unconsumed_tail:
            raise TrackingError(400, "batch_too_large", f"Body exceeds {limit // 1024} KB once decompressed.")
    if len(raw) > limit:
        raise TrackingError(400, "batch_too_large", f"Body exceeds {limit // 1024} KB.")
    return raw


def _parse(body: bytes) -> dict:
    try:
        return json_object_load(body)
    except JsonRejected as error:
        raise TrackingError(400, error.code, error.message) from error


def _write_key(request, document: dict) -> str:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, ValueError):  # ValueError: a non-ASCII header; UnicodeDecodeError is one too
            decoded = ""
        return decoded.partition(":")[0]
    write_key = document.get("writeKey") or request.headers.get("X-Write-Key") or ""
    return write_key if isinstance(write_key, str) else ""


def _authenticate(request, document: dict) -> Source:
    write_key = _write_key(request, document)
    if not write_key:
        raise TrackingError(401, "missing_write_key", "Send the write key as the HTTP Basic user name.")
    source = source_for_write_key(write_key, kind=Source.TRACKING)
    if source is None:
        raise TrackingError(401, "invalid_write_key", "The write key does not match an active tracking source.")
    return source


def _messages(call_type: str, document: dict, *, max_batch: int) -> list[dict]:
    if call_type == "batch":
        items = document.get("batch")
        if not isinstance(items, list):
            raise TrackingError(400, "invalid_batch", "A batch needs a 'batch' array of messages.")
        shared_context = document.get("context") if isinstance(document.get("context"), dict) else {}
        shared_integrations = document.get("integrations") if isinstance(document.get("integrations"), dict) else {}
        messages = []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise TrackingError(400, "invalid_message", f"batch[{index}] is not an object.")
            message = dict(item)
            _check_objects(message, f"batch[{index}]")
            if shared_context or "context" in message:
                message["context"] = {**shared_context, **(message.get("context") or {})}
            if shared_integrations or "integrations" in message:
                message["integrations"] = {**shared_integrations, **(message.get("integrations") or {})}
            if "sentAt" not in message and document.get("sentAt"):
                message["sentAt"] = document["sentAt"]
            messages.append(_validated(message, f"batch[{index}]", message.get("type")))
        return messages
    message = {key: value for key, value in document.items() if key != "writeKey"}
    return [_validated(message, "message", call_type)]


def _validated(message: dict, where: str, call_type) -> dict:
    if call_type not in CALL_TYPES:
        raise TrackingError(400, "invalid_type", f"{where}: type must be one of {', '.join(CALL_TYPES)}.")
    message["type"] = call_type
    size = len(json.dumps(message, separators=(",", ":")))
    if size > settings.TRACKING_MAX_MESSAGE_BYTES:
        raise TrackingError(
            400, "message_too_large", f"{where}: {size} bytes exceeds {settings.TRACKING_MAX_MESSAGE_BYTES // 1024} KB."
        )
    if not message.get("userId") and not message.get("anonymousId"):
        raise TrackingError(400, "missing_identity", f"{where}: a message needs a userId or an anonymousId.")
    if call_type == "track" and not isinstance(message.get("event"), str):
        raise TrackingError(400, "missing_event", f"{where}: a track call needs an 'event' name.")
    if call_type == "group" and not message.get("groupId"):
        raise TrackingError(400, "missing_group_id", f"{where}: a group call needs a 'groupId'.")
    if call_type == "alias" and not (message.get("previousId") and message.get("userId")):
        raise TrackingError(400, "missing_alias_ids", f"{where}: an alias call needs 'previousId' and 'userId'.")
    _check_objects(message, where)
    for name in IDENTITY_FIELDS:
        value = message.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, str | int | float)):
            raise TrackingError(400, "invalid_field", f"{where}: '{name}' must be a string.")
    message_id = message.get("messageId")
    if message_id in (None, ""):
        message["messageId"] = str(uuid.uuid4())
    elif not isinstance(message_id, str) or len(message_id) > MAX_MESSAGE_ID:
        raise TrackingError(
            400, "invalid_message_id", f"{where}: messageId must be a string of at most 100 characters."
        )
    return message


def _check_objects(message: dict, where: str) -> None:
    for name in OBJECT_FIELDS:
        if message.get(name) is not None and not isinstance(message[name], dict):
            raise TrackingError(400, "invalid_field", f"{where}: '{name}' must be an object.")


def _check_rate(source: Source, count: int) -> None:
    """A fixed one-second window per source, counted in messages in the shared cache.

    Fails open: when the cache is unreachable (Redis down) the request is accepted without a limit.
    The limit shields the workers from a runaway sender; refusing every sender while Redis is down
    would turn a cache outage into an ingestion outage, and SDKs drop what their retries cannot deliver."""
    try:
        used = _rate_window_add(source, count)
    except CACHE_UNAVAILABLE as error:
        _warn_rate_limit_unavailable(error)
        return
    if used > source.rate_limit_per_second:
        raise TrackingError(
            429,
            "rate_limited",
            f"This source may send {source.rate_limit_per_second} messages per second; retry shortly.",
            headers={"Retry-After": "1"},
        )


def _rate_window_add(source: Source, count: int) -> int:
    """Add `count` messages to this second's counter of the source; return the second's total.

    Exact on Redis (INCRBY). On the database cache incr() is a read and a write, so requests landing in
    the same instant may count once: the limit is approximate there, which a rate limit can afford."""
    second = int(time.time())
    key = f"tracking-rate:{source.pk}:{second}"
    if cache.add(key, count, timeout=5):
        used = count
    else:
        try:
            used = cache.incr(key, count)
        except ValueError:
            cache.set(key, count, timeout=5)
            used = count
    return used

"""Webhook signature verification, each the way its sender signs. Always over the raw body, in
constant time, against every active secret (so secrets rotate without downtime)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac


class SignatureError(Exception):
    """The request is not from the sender (401), or its timestamp is outside the tolerance (400)."""

    def __init__(self, message: str, *, status: int = 401, code: str = "invalid_signature"):
        super().__init__(message)
        self.status, self.code = status, code


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def _matches(expected: str, candidate: str) -> bool:
    """Constant-time comparison that also takes hostile headers: compare_digest refuses non-ASCII str."""
    return hmac.compare_digest(expected.encode(), candidate.encode("utf-8", "replace"))


def _unix_seconds(value: str) -> int | None:
    """ASCII digits only, and a sane length: `²` passes str.isdigit() but not int(), and a
    thousand-digit timestamp cannot be compared with the clock as a float."""
    if value.isascii() and value.isdigit() and len(value) <= 12:
        return int(value)
    return None


def _check_timestamp(timestamp: int, now: float, tolerance: int) -> None:
    if abs(now - timestamp) > tolerance:
        raise SignatureError(
            f"timestamp {timestamp} is more than {tolerance} s from the server time", status=400, code="stale_timestamp"
        )


def verify_stripe(*, body: bytes, header: str, secrets: list[str], now: float, tolerance: int) -> None:
    """`Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>]`: HMAC-SHA256 of "{t}.{body}"."""
    if not header:
        raise SignatureError("missing Stripe-Signature header")
    timestamp, signatures = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or _unix_seconds(timestamp) is None or not signatures:
        raise SignatureError("Stripe-Signature needs t=<unix seconds> and at least one v1=")
    _check_timestamp(int(timestamp), now, tolerance)
    signed = timestamp.encode() + b"." + body
    for secret in secrets:
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        if any(_matches(expected, candidate) for candidate in signatures):
            return
    raise SignatureError("no v1 signature matches an active secret")


def verify_shopify(*, body: bytes, header: str, secrets: list[str]) -> None:
    """`X-Shopify-Hmac-Sha256`: base64 of HMAC-SHA256 of the raw body with the app secret."""
    if not header:
        raise SignatureError("missing X-Shopify-Hmac-Sha256 header")
    for secret in secrets:
        expected = base64.b64encode(_hmac(secret.encode(), body)).decode()
        if _matches(expected, header.strip()):
            return
    raise SignatureError("X-Shopify-Hmac-Sha256 does not match an active secret")


def verify_mindbody(*, body: bytes, header: str, secrets: list[str]) -> None:
    """`X-Mindbody-Signature: sha256=<base64 HMAC-SHA256(body, messageSignatureKey)>`."""
    if not header or not header.startswith("sha256="):
        raise SignatureError("missing or malformed X-Mindbody-Signature header (sha256=<base64>)")
    candidate = header[len("sha256=") :].strip()
    for secret in secrets:
        expected = base64.b64encode(_hmac(secret.encode(), body)).decode()
        if _matches(expected, candidate):
            return
    raise SignatureError("X-Mindbody-Signature does not match an active key")


def _standard_key(secret: str) -> bytes:
    encoded = secret[len("whsec_") :] if secret.startswith("whsec_") else secret
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error:
        return encoded.encode()


def verify_standard(
    *, body: bytes, message_id: str, timestamp: str, header: str, secrets: list[str], now: float, tolerance: int
) -> None:
    """Standard Webhooks: `webhook-signature: v1,<base64> [v1,<base64> ...]` over "{id}.{timestamp}.{body}"."""
    if not (message_id and timestamp and header):
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature header")
    if _unix_seconds(timestamp) is None:
        raise SignatureError("webhook-timestamp must be Unix seconds", status=400, code="stale_timestamp")
    _check_timestamp(int(timestamp), now, tolerance)
    signed = f"{message_id}.{timestamp}.".encode() + body
    candidates = [part.partition(",")[2] for part in header.split() if part.startswith("v1,")]
    for secret in secrets:
        expected = base64.b64encode(_hmac(_standard_key(secret), signed)).decode()
        if any(_matches(expected, candidate) for candidate in candidates):
            return
    raise SignatureError("no v1 signature matches an active secret")

"""Test senders: sign and post bodies exactly as Stripe, Shopify, Mindbody and Standard Webhooks do."""

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def stripe_headers(body: bytes, secret: str, timestamp: int | None = None) -> dict:
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"HTTP_STRIPE_SIGNATURE": f"t={timestamp},v1={signature}"}


def shopify_headers(body: bytes, secret: str, *, topic: str, event_id: str) -> dict:
    digest = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return {
        "HTTP_X_SHOPIFY_HMAC_SHA256": digest,
        "HTTP_X_SHOPIFY_TOPIC": topic,
        "HTTP_X_SHOPIFY_EVENT_ID": event_id,
        "HTTP_X_SHOPIFY_SHOP_DOMAIN": "studio.myshopify.com",
        "HTTP_X_SHOPIFY_TRIGGERED_AT": "2026-03-02T14:00:06.000Z",
        "HTTP_X_SHOPIFY_API_VERSION": "2025-01",
    }


def mindbody_headers(body: bytes, key: str) -> dict:
    digest = base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()
    return {"HTTP_X_MINDBODY_SIGNATURE": f"sha256={digest}"}


def standard_headers(body: bytes, secret: str, *, message_id: str, timestamp: int | None = None) -> dict:
    timestamp = int(time.time()) if timestamp is None else timestamp
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signature = base64.b64encode(hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest())
    return {
        "HTTP_WEBHOOK_ID": message_id,
        "HTTP_WEBHOOK_TIMESTAMP": str(timestamp),
        "HTTP_WEBHOOK_SIGNATURE": f"v1,{signature.decode()}",
    }

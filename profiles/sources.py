"""Source credentials: write keys (stored hashed, shown once) and signing secrets (encrypted)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from profiles.models import Source

WRITE_KEY_PREFIX = "wk_"


@dataclass(frozen=True)
class IssuedCredentials:
    """What is shown once after creating a source or rotating its credentials."""

    write_key: str | None = None
    signing_secret: str | None = None


def hash_write_key(write_key: str) -> str:
    # Write keys are 256-bit random strings, so a fast hash is safe and allows lookup by hash.
    return hashlib.sha256(write_key.encode()).hexdigest()


def new_signing_secret(kind: str) -> str:
    if kind == Source.STANDARD_WEBHOOK:
        return "whsec_" + base64.b64encode(os.urandom(24)).decode()
    if kind == Source.STRIPE:
        return "whsec_" + secrets.token_hex(24)
    return secrets.token_urlsafe(32)


def signing_secrets(source: Source) -> list[str]:
    """Active signing secrets, newest first."""
    return json.loads(source.signing_secrets) if source.signing_secrets else []


# Page paths under /sources/ (source audit, integration plan): a source named so gets a suffix.
RESERVED_SLUGS = frozenset({"audit", "integration-plan", "new"})


def unique_slug(name: str) -> str:
    base = slugify(name)[:50] or "source"
    slug, counter = base, 2
    if slug in RESERVED_SLUGS:
        slug = f"{base}-{counter}"
        counter += 1
    while Source.objects.filter(slug=slug).exists():
        slug, counter = f"{base}-{counter}", counter + 1
    return slug


@transaction.atomic
def source_create(
    *, name: str, kind: str, owner=None, signing_secret: str | None = None, **fields
) -> tuple[Source, IssuedCredentials]:
    """Create a source with fresh credentials. Webhook senders may dictate their own secret
    (Shopify's app secret, Mindbody's messageSignatureKey): pass it as `signing_secret`."""
    if kind not in dict(Source.KINDS):
        raise ValueError(f"unknown source kind {kind!r}; choose one of {', '.join(dict(Source.KINDS))}")
    source = Source(name=name, slug=fields.pop("slug", None) or unique_slug(name), kind=kind, owner=owner, **fields)
    credentials = _issue_credentials(source, signing_secret=signing_secret, keep_previous=False)
    source.save()
    return source, credentials


@transaction.atomic
def source_rotate_credentials(
    *, source: Source, signing_secret: str | None = None, keep_previous: bool = True
) -> IssuedCredentials:
    """New write key (the old one stops at once) or a new signing secret. The previous signing
    secret stays valid until `source_retire_old_secrets`, so senders rotate without downtime."""
    source = Source.objects.select_for_update().get(pk=source.pk)
    credentials = _issue_credentials(source, signing_secret=signing_secret, keep_previous=keep_previous)
    source.secrets_rotated_at = timezone.now()
    source.save()
    return credentials


@transaction.atomic
def source_retire_old_secrets(*, source: Source) -> None:
    source = Source.objects.select_for_update().get(pk=source.pk)
    current = signing_secrets(source)[:1]
    source.signing_secrets = json.dumps(current) if current else ""
    source.save(update_fields=["signing_secrets"])


def _issue_credentials(source: Source, *, signing_secret: str | None, keep_previous: bool) -> IssuedCredentials:
    if source.kind in (Source.TRACKING, Source.CSV):
        write_key = WRITE_KEY_PREFIX + secrets.token_urlsafe(32)
        source.write_key_hash = hash_write_key(write_key)
        source.write_key_prefix = write_key[:10]
        return IssuedCredentials(write_key=write_key)
    secret = signing_secret or new_signing_secret(source.kind)
    previous = signing_secrets(source) if keep_previous else []
    source.signing_secrets = json.dumps([secret, *[s for s in previous if s != secret]][:3])
    return IssuedCredentials(signing_secret=secret)


def source_for_write_key(write_key: str, *, kind: str | None = None) -> Source | None:
    """The active source holding this write key (of this kind, when given), read from the database.

    Called on every tracking request and never cached in the process: a rotation, a deactivation or
    a new rate limit, saved from any machine and any path (these services, the admin, a shell), applies
    to the very next request everywhere. It is one indexed query, a fraction of a millisecond beside
    the insert of the batch that follows."""
    if not write_key:
        return None
    sources = Source.objects.filter(write_key_hash=hash_write_key(write_key), is_active=True)
    if kind is not None:
        sources = sources.filter(kind=kind)
    return sources.first()

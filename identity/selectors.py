"""Reads of the identity graph."""

from __future__ import annotations

from django.conf import settings

from consent import vault
from identity import domain
from identity.models import Identifier, IdentifierType


def identifier_types_by_slug() -> dict[str, IdentifierType]:
    return {identifier_type.slug: identifier_type for identifier_type in IdentifierType.objects.all()}


def identifier_find(*, type_slug: str, raw_value: str) -> Identifier | None:
    """Find an identifier by type and raw value, normalised exactly as at ingest.

    Raises LookupError for an unknown type and domain.InvalidIdentifier for a value that does
    not normalise (e.g. "email:not-an-email").
    """
    identifier_type = IdentifierType.objects.filter(slug=type_slug).first()
    if identifier_type is None:
        raise LookupError(f"unknown identifier type {type_slug!r}")
    normalised = domain.normalise(identifier_type.normaliser, raw_value, default_region=settings.PHONE_DEFAULT_REGION)
    return (
        Identifier.objects.select_related("identifier_type")
        .filter(identifier_type=identifier_type, lookup_hash=vault.blind_index(type_slug, normalised))
        .first()
    )


def parse_identifier_query(text: str) -> tuple[str, str] | None:
    """'email:ada@example.com' -> ('email', 'ada@example.com'); anything else -> None."""
    type_slug, separator, value = text.partition(":")
    if not separator or not type_slug.strip() or not value.strip():
        return None
    return type_slug.strip(), value.strip()

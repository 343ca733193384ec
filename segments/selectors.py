"""Reads for segments: what a definition may refer to, previews, and lists."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, QuerySet
from django.utils import timezone

from consent.sealing import unseal_trait_dicts
from identity.models import IdentifierType
from profiles.contracts import DEFAULT_CONTRACTS
from profiles.models import EventContract, Profile
from segments.models import ComputedTrait, Segment


def definition_context() -> dict:
    """What a definition may name: event types with a contract, identifier types, and the
    published definitions of existing segments (for references and cycle checks)."""
    event_types = set(EventContract.objects.filter(is_active=True).values_list("event_type", flat=True))
    return {
        "event_types": event_types or set(DEFAULT_CONTRACTS),
        "identifier_types": set(IdentifierType.objects.values_list("slug", flat=True)),
        "computed_traits": set(ComputedTrait.objects.values_list("key", flat=True)),
        "segments": {
            slug: definition
            for slug, definition in Segment.objects.filter(published_version__isnull=False).values_list(
                "slug", "published_version__definition"
            )
        },
    }


def resolve_published(slug: str) -> dict:
    """The published definition of a segment, for `{"segment": slug}` conditions."""
    segment = Segment.objects.select_related("published_version").filter(slug=slug).first()
    if segment is None or segment.published_version is None:
        raise LookupError(f"segment {slug!r} has no published version")
    return segment.published_version.definition


def segment_audience(*, definition: dict, now: datetime | None = None) -> QuerySet:
    """Active profiles matching a definition: one query, built by the compiler."""
    from segments.compiler import segment_queryset

    return segment_queryset(definition, now=now or timezone.now(), resolve_segment=resolve_published)


def segment_preview(*, definition: dict, sample_size: int = 10, now: datetime | None = None) -> dict:
    """The audience count and a sample of members, newest activity first."""
    audience = segment_audience(definition=definition, now=now)
    sample = list(
        audience.order_by("-last_seen_at", "-id").values("id", "traits", "last_seen_at", "lifetime_revenue")[
            :sample_size
        ]
    )
    unseal_trait_dicts(sample)  # callers show them masked; masking needs the value, not its token
    return {"count": audience.count(), "sample": sample, "profiles": Profile.objects.filter(status="active").count()}


def segment_list() -> QuerySet:
    """Segments with their version count, open members and last refresh (one query)."""
    from django.db.models import Max, OuterRef, Subquery

    from segments.models import SegmentMembership

    members = (
        SegmentMembership.objects.filter(segment=OuterRef("pk"), exited_at__isnull=True)
        .values("segment")
        .annotate(n=Count("id"))
        .values("n")
    )
    return Segment.objects.select_related("published_version", "owner").annotate(
        version_count=Count("versions", distinct=True),
        last_computed_at=Max("refreshes__computed_at"),
        member_count=Subquery(members),
    )


def segment_growth(*, segment: Segment, limit: int = 30) -> list:
    """The last refreshes, oldest first: members, entries and exits over time."""
    return list(reversed(segment.refreshes.select_related("version").order_by("-computed_at", "-id")[:limit]))

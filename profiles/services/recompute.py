"""Recomputing a profile's materialised fields from its rows, after its rows changed hands.

Processing folds each batch into the materialised fields incrementally; an unmerge or a
review decision moves rows between profiles, so the fields of each profile involved are rebuilt
from what it now holds: trait observations, consent records, events and identifiers.
"""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Max, Min, Sum
from django.utils import timezone

from consent.models import ConsentRecord
from identity import domain
from identity.models import Identifier, IdentityLink
from profiles import traits as trait_rules
from profiles.models import Event, Profile, Source, TraitValue


def profile_recompute(*, profile_id: int) -> Profile:
    profile = Profile.objects.get(pk=profile_id)
    priorities = dict(Source.objects.values_list("id", "priority"))
    traits, provenance = {}, {}
    for key, value, source_id, raw_event_id, identifier_id, observed_at, is_verified in (
        TraitValue.objects.filter(profile_id=profile_id)
        .order_by("observed_at", "id")
        .values_list("key", "value", "source_id", "raw_event_id", "identifier_id", "observed_at", "is_verified")
    ):
        entry = trait_rules.provenance(
            source_id=source_id,
            priority=priorities.get(source_id, 0),
            observed_at=observed_at,
            is_verified=is_verified,
            raw_event_id=raw_event_id,
            identifier_id=identifier_id,
        )
        trait_rules.apply_trait(traits, provenance, key, value, entry)
    consent: dict = {}
    for purpose, is_granted, captured_at, source_id in (
        ConsentRecord.objects.filter(profile_id=profile_id)
        .order_by("captured_at", "id")
        .values_list("purpose", "is_granted", "captured_at", "source_id")
    ):
        trait_rules.apply_consent(consent, purpose, is_granted=is_granted, captured_at=captured_at, source_id=source_id)
    events = Event.objects.filter(profile_id=profile_id).aggregate(
        revenue=Sum("revenue"), first=Min("occurred_at"), last=Max("occurred_at")
    )
    identifiers = list(
        Identifier.objects.filter(profile_id=profile_id).values_list(
            "id", "identifier_type__role", "first_seen_at", "last_seen_at"
        )
    )
    seen_first = [at for at in [events["first"], *(row[2] for row in identifiers)] if at is not None]
    seen_last = [at for at in [events["last"], *(row[3] for row in identifiers)] if at is not None]
    ids = [row[0] for row in identifiers]
    links = list(
        IdentityLink.objects.filter(status=IdentityLink.ACTIVE, from_identifier__profile_id=profile_id).values_list(
            "from_identifier_id", "to_identifier_id", "confidence"
        )
    )
    now = timezone.now()
    profile.traits, profile.trait_provenance, profile.consent = traits, provenance, consent
    profile.lifetime_revenue = events["revenue"] or Decimal("0")
    profile.first_seen_at = min(seen_first) if seen_first else None
    profile.last_seen_at = max(seen_last) if seen_last else None
    profile.merge_confidence = domain.bottleneck_confidence(ids, links)
    profile.lifecycle = trait_rules.lifecycle(
        is_known=any(role != domain.ANONYMOUS for _, role, _, _ in identifiers),
        lifetime_revenue=profile.lifetime_revenue,
        last_seen_at=profile.last_seen_at,
        now=now,
    )
    profile.updated_at = now
    profile.save(
        update_fields=[
            "traits",
            "trait_provenance",
            "consent",
            "lifetime_revenue",
            "first_seen_at",
            "last_seen_at",
            "merge_confidence",
            "lifecycle",
            "updated_at",
        ]
    )
    return profile

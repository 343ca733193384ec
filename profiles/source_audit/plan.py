"""The integration plan: one printable page from the live configuration and the latest audit.

Configuration (owners, identifier types, freshness SLAs, destinations and their runbook) is read
live; measured figures come from the latest audit snapshot, so the page is cheap to render.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import OuterRef, Prefetch, Subquery
from django.utils import timezone

from activations.selectors import runbook
from identity.models import IdentifierType
from profiles.models import RawEvent, Source, SourceAuditRun

# Where each kind of source carries consent (README "Consent"): the channel its records come from.
CONSENT_CHANNELS = {
    Source.TRACKING: "context.consent.categoryPreferences of tracking calls",
    Source.STRIPE: "none: Stripe events carry no marketing consent",
    Source.SHOPIFY: "customers/create and customers/update: email_marketing_consent, sms_marketing_consent",
    Source.MINDBODY: "client.created and client.updated: promotional email and text flags",
    Source.STANDARD_WEBHOOK: "data.consent {purpose: true|false} of each message",
    Source.CSV: "consent:<purpose> columns of the import mapping",
}
DELETION_AT_SOURCE = (
    "A deletion request purges this source's raw payloads, events, identifiers and traits of the person and "
    "tombstones their identifiers: later events from this source naming them are acknowledged and dropped at "
    "processing. The sender keeps its own copy: ask its owner to delete it there."
)
QUARANTINE_GAP = 0.01
TIMESTAMP_GAP = 0.01
REDELIVERY_GAP = 0.05


def _percent(share: float) -> str:
    return f"{share * 100:.1f}%"


def quality_gaps(row: dict) -> list[str]:
    """The data quality problems an integration should fix first, in plain words."""
    gaps = []
    contracts, timestamps = row["contracts"], row["timestamps"]
    if contracts["quarantine_rate"] >= QUARANTINE_GAP:
        gaps.append(
            f"{_percent(contracts['quarantine_rate'])} of raw events quarantined "
            f"({contracts['contract_failures']} contract, {contracts['mapping_failures']} mapping, "
            f"{contracts['identity_failures']} identity)"
        )
    if contracts["failed"]:
        gaps.append(f"{contracts['failed']} raw events failed in the mapper")
    if contracts["types_without_contract"]:
        gaps.append("event types without a contract: " + ", ".join(contracts["types_without_contract"]))
    drift = row["unknown_properties"]["properties"]
    if drift:
        names = sorted({f"{item['event_type']}.{item['property']}" for item in drift})
        gaps.append(f"{len(names)} undeclared properties: " + ", ".join(names[:8]) + (" …" if len(names) > 8 else ""))
    if timestamps["missing_share"] >= TIMESTAMP_GAP:
        gaps.append(f"{_percent(timestamps['missing_share'])} without a sender timestamp (dated on receipt)")
    if timestamps["naive_share"] >= TIMESTAMP_GAP:
        gaps.append(f"{_percent(timestamps['naive_share'])} with a timestamp without a timezone")
    if timestamps["future_share"] >= TIMESTAMP_GAP:
        gaps.append(f"{_percent(timestamps['future_share'])} of events dated in the future")
    if row["duplicates"]["redelivery_rate"] >= REDELIVERY_GAP:
        gaps.append(f"{_percent(row['duplicates']['redelivery_rate'])} of deliveries were redeliveries")
    return gaps


def integration_plan(run: SourceAuditRun | None) -> dict:
    figures = (run.figures or {}) if run else {}
    measured = figures.get("sources", {})
    ranking = figures.get("ranking", [])
    now = timezone.now()
    last_received = RawEvent.objects.filter(source=OuterRef("pk")).order_by("-received_at").values("received_at")[:1]
    sources = list(
        Source.objects.select_related("owner")
        .prefetch_related(Prefetch("identifier_types", queryset=IdentifierType.objects.order_by("slug")))
        .annotate(last_received_at=Subquery(last_received))
        .order_by("name", "pk")
    )
    position = {slug: index for index, slug in enumerate(ranking)}
    sources.sort(key=lambda source: (position.get(source.slug, len(position)), source.name))
    destinations = {entry["destination"].slug: entry for entry in runbook()}

    entries = []
    for rank, source in enumerate(sources, start=1):
        row = measured.get(source.slug)
        configured = [identifier_type.slug for identifier_type in source.identifier_types.all()]
        sent = {slug: values for slug, values in (row["identifiers"]["by_type"] if row else {}).items()}
        age = (now - source.last_received_at) if source.last_received_at else None
        reached = []
        for slug, reach in (row["activation"]["destinations"] if row else {}).items():
            entry = destinations.get(slug)
            reached.append(
                {
                    "slug": slug,
                    "name": entry["destination"].name if entry else slug,
                    "segments": reach["segments"],
                    "event_types": reach["event_types"],
                    "consent": entry["consent"] if entry else "",
                    "deletion": entry["deletion"] if entry else "the destination no longer exists",
                }
            )
        entries.append(
            {
                "rank": rank if row else None,
                "source": source,
                "owner": source.owner.get_username() if source.owner else "",
                "scorecard": row["scorecard"] if row else None,
                "identifiers": {
                    "configured": configured,
                    "measured": sorted(sent),
                    "coverage": {slug: values["coverage"] for slug, values in sorted(sent.items())},
                    "configured_not_sent": sorted(set(configured) - set(sent)),
                    "sent_not_configured": sorted(set(sent) - set(configured)),
                },
                "freshness": {
                    "sla_minutes": source.freshness_sla_minutes,
                    "last_received_at": source.last_received_at,
                    "is_breached": age is None or age > timedelta(minutes=source.freshness_sla_minutes),
                },
                "gaps": quality_gaps(row) if row else ["not in the latest audit: run the audit"],
                "compliance": {
                    "consent_channel": CONSENT_CHANNELS.get(source.kind, ""),
                    "consent_purposes": row["exposure"]["consent_purposes"] if row else {},
                    "pii_identifier_types": row["exposure"]["pii_identifier_types"] if row else [],
                    "pii_traits": row["exposure"]["pii_traits"] if row else [],
                    "deletion_at_source": DELETION_AT_SOURCE,
                    "destinations": reached,
                },
            }
        )
    return {"run": run, "entries": entries, "generated_at": now}

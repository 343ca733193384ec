"""The source audit's measurements: aggregate queries over a bounded window of raw events.

Nothing here loads events or profiles into Python: every figure is a COUNT, SUM or GROUP BY the
database answers, on PostgreSQL and SQLite alike (JSON key lookups and the REGEXP lookup exist on
both). Per-source queries are driven by the (source, received_at) index of raw events; events
are reached from their raw event (the unique (raw_event, sequence) index), so a source's whole
history is never scanned for a 30-day window.

Identifier figures (who sent which identifier, overlap, matchability) are all-time: they read
SourceIdentifier, which processing keeps and which knows when a pair was first seen, not each
later sighting.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce, Substr

from activations.domain import PII_TRAITS
from activations.models import Sync, Trigger
from consent.models import ConsentRecord
from identity.models import IdentifierType
from profiles.models import (
    CsvImport,
    Event,
    RawEvent,
    SchemaDrift,
    Source,
    SourceDeliveryCount,
    SourceIdentifier,
    TraitValue,
)
from segments.domain import definition_dependencies
from segments.models import Segment, SegmentMembership

# Clocks drift: an event dated up to this far after its receipt is not "in the future".
FUTURE_SKEW = timedelta(minutes=5)
TOP_REASONS = 5
REASON_LENGTH = 120
DISTINCT_ERRORS_READ = 200  # quarantine messages read to find event types without a contract

# Per kind, the payload keys that carry the sender's own timestamp (first present wins), as the
# mappers read them. CSV rows carry theirs in the column their import maps to occurred_at.
TIMESTAMP_KEYS = {
    Source.TRACKING: ("originalTimestamp", "timestamp"),
    Source.STRIPE: ("created",),
    Source.SHOPIFY: ("created_at", "updated_at", "processed_at"),
    Source.MINDBODY: ("eventInstanceOriginationDateTime",),
    Source.STANDARD_WEBHOOK: ("timestamp",),
}
# Timezone-aware: epoch seconds (Stripe), or an ISO 8601 time ending in Z or a UTC offset. A date
# alone, or a time without an offset, is naive. POSIX and Python regular expressions alike.
AWARE_PATTERN = (
    r"^[0-9]{9,11}([.][0-9]+)?$"
    r"|[0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]+)?)?([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)$"
)
_NO_CONTRACT = re.compile(r"no contract for event type '([^']+)'")


def _share(part: float, whole: float) -> float:
    return round(part / whole, 4) if whole else 0.0


def window_raw_events(source: Source, since: datetime) -> QuerySet[RawEvent]:
    return RawEvent.objects.filter(source=source, received_at__gte=since).order_by()


def window_events(source: Source, since: datetime) -> QuerySet[Event]:
    return Event.objects.filter(raw_event__source=source, raw_event__received_at__gte=since).order_by()


# -- raw events, events, contracts -------------------------------------------------------------


def raw_event_counts(raws: QuerySet[RawEvent]) -> dict:
    by_status = {code: 0 for code, _ in RawEvent.STATUSES}
    for status, n in raws.values_list("status").annotate(n=Count("id")):
        by_status[status] = n
    topics = dict(raws.values_list("topic").annotate(n=Count("id")).order_by("-n", "topic"))
    return {"total": sum(by_status.values()), "by_status": by_status, "by_topic": topics}


def events_by_type(events: QuerySet[Event]) -> dict:
    return dict(events.values_list("type").annotate(n=Count("id")).order_by("-n", "type"))


def contract_figures(raws: QuerySet[RawEvent], total: int) -> dict:
    quarantined = raws.filter(status=RawEvent.QUARANTINED)
    counts = quarantined.aggregate(
        quarantined=Count("id"),
        contract=Count("id", filter=Q(error__startswith="contract:")),
        mapping=Count("id", filter=Q(error__startswith="mapping:")),
        identity=Count("id", filter=Q(error__startswith="identity:")),
    )
    failed = raws.filter(status=RawEvent.FAILED).count()
    reasons = [
        {"reason": reason, "count": n}
        for reason, n in (
            raws.filter(status__in=[RawEvent.QUARANTINED, RawEvent.FAILED])
            .annotate(reason=Substr("error", 1, REASON_LENGTH))
            .values_list("reason")
            .annotate(n=Count("id"))
            .order_by("-n", "reason")[:TOP_REASONS]
        )
    ]
    missing_contracts = set()
    messages = (
        quarantined.filter(error__contains="no contract for event type")
        .values_list("error", flat=True)
        .distinct()[:DISTINCT_ERRORS_READ]
    )
    for message in messages:
        missing_contracts.update(_NO_CONTRACT.findall(message))
    return {
        "quarantined": counts["quarantined"],
        "contract_failures": counts["contract"],
        "mapping_failures": counts["mapping"],
        "identity_failures": counts["identity"],
        "failed": failed,
        "quarantine_rate": _share(counts["quarantined"], total),
        "error_rate": _share(counts["quarantined"] + failed, total),
        "top_reasons": reasons,
        "types_without_contract": sorted(missing_contracts),
    }


def unknown_properties(source: Source, since: datetime) -> dict:
    rows = (
        SchemaDrift.objects.filter(source=source, last_seen_at__gte=since)
        .order_by("event_type", "property_name")
        .values("event_type", "property_name", "occurrences")
    )
    properties = [
        {"event_type": row["event_type"], "property": row["property_name"], "occurrences": row["occurrences"]}
        for row in rows
    ]
    return {"count": len(properties), "properties": properties}


# -- timestamps --------------------------------------------------------------------------------


def _timestamp_counts(raws: QuerySet[RawEvent], expression) -> dict:
    annotated = raws.annotate(sent_at=expression)
    present = ~Q(sent_at__isnull=True) & ~Q(sent_at="")
    return annotated.aggregate(
        total=Count("id"),
        present=Count("id", filter=present),
        aware=Count("id", filter=present & Q(sent_at__regex=AWARE_PATTERN)),
    )


def timestamp_figures(source: Source, raws: QuerySet[RawEvent], events: QuerySet[Event]) -> dict:
    """Shares of the raw events whose sender's timestamp is timezone-aware, naive or missing, and of
    the events dated after their receipt (plus FUTURE_SKEW). Dropped raw events (blanked for a
    deletion request) are left out: their payload is gone."""
    raws = raws.exclude(status=RawEvent.DROPPED)
    if source.kind == Source.CSV:
        counts, field = _csv_timestamp_counts(raws)
    else:
        keys = TIMESTAMP_KEYS.get(source.kind, ())
        texts = [KT(f"payload__{key}") for key in keys]
        expression = texts[0] if len(texts) == 1 else Coalesce(*texts)
        counts, field = _timestamp_counts(raws, expression), " or ".join(keys)
    future = events.aggregate(
        events=Count("id"), future=Count("id", filter=Q(occurred_at__gt=F("received_at") + FUTURE_SKEW))
    )
    total, present, aware = counts["total"], counts["present"], counts["aware"]
    return {
        "field": field,
        "raw_events": total,
        "aware": aware,
        "naive": present - aware,
        "missing": total - present,
        "aware_share": _share(aware, total),
        "naive_share": _share(present - aware, total),
        "missing_share": _share(total - present, total),
        "events": future["events"],
        "future": future["future"],
        "future_share": _share(future["future"], future["events"]),
        "future_skew_seconds": int(FUTURE_SKEW.total_seconds()),
    }


def _csv_timestamp_counts(raws: QuerySet[RawEvent]) -> tuple[dict, str]:
    """CSV rows: the column each import maps to occurred_at (one query per import in the window;
    rows of imports without such a column count as missing: they are dated by their receipt)."""
    import_ids = sorted(
        {
            int(value)
            for value in raws.annotate(import_id=KT("payload__import_id"))
            .values_list("import_id", flat=True)
            .distinct()
            if value not in (None, "") and str(value).isdigit()
        }
    )
    total = raws.count()
    present = aware = 0
    columns = set()
    for import_id, mapping in CsvImport.objects.filter(pk__in=import_ids).values_list("pk", "mapping"):
        column = next(
            (name for name, target in (mapping or {}).get("columns", {}).items() if target == "occurred_at"), None
        )
        if column is None:
            continue
        columns.add(column)
        rows = raws.filter(payload__import_id=import_id)
        counts = _timestamp_counts(rows, KT(f"payload__row__{column}"))
        present, aware = present + counts["present"], aware + counts["aware"]
    field = "CSV column mapped to occurred_at" + (f" ({', '.join(sorted(columns))})" if columns else "")
    return {"total": total, "present": present, "aware": aware}, field


# -- duplicates --------------------------------------------------------------------------------


def duplicate_figures(source: Source, since: datetime, raw_total: int, events: QuerySet[Event]) -> dict:
    """Redeliveries: requests for a (source, external id) already stored, counted at ingestion.
    Content duplicates: events of this source with the same type, identifier and occurred_at as
    another one (different sender ids, same happening) — a hint, not proof."""
    redeliveries = (
        SourceDeliveryCount.objects.filter(source=source, day__gte=since.date()).aggregate(n=Sum("duplicates"))["n"]
        or 0
    )
    groups = (
        events.filter(identifier__isnull=False)
        .values("type", "identifier_id", "occurred_at")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .values("n")
    )
    sql, params = groups.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COALESCE(SUM(n - 1), 0) FROM ({sql}) duplicated", params)  # noqa: S608
        content = int(cursor.fetchone()[0] or 0)
    event_total = events.count()
    deliveries = raw_total + redeliveries
    return {
        "deliveries": deliveries,
        "redeliveries": redeliveries,
        "redelivery_rate": _share(redeliveries, deliveries),
        "content_duplicates": content,
        "content_duplicate_rate": _share(content, event_total),
    }


# -- identifiers -------------------------------------------------------------------------------


def identifier_figures(source: Source, events: QuerySet[Event], types: dict[int, IdentifierType]) -> dict:
    """Per identifier type: how many distinct identifiers the source has sent (all time), and the
    share of the people its events in the window reached for whom it sent one of that type."""
    sent = dict(
        SourceIdentifier.objects.filter(source=source)
        .values_list("identifier_type_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    reached_profiles = events.values("profile_id")
    profiles_reached = events.aggregate(n=Count("profile_id", distinct=True))["n"]
    covered = dict(
        SourceIdentifier.objects.filter(source=source, identifier__profile_id__in=reached_profiles)
        .values_list("identifier_type_id")
        .annotate(n=Count("identifier__profile_id", distinct=True))
        .order_by()
    )
    by_type = {}
    for type_id in sorted(set(sent) | set(covered), key=lambda pk: types[pk].slug):
        by_type[types[type_id].slug] = {
            "identifiers": sent.get(type_id, 0),
            "profiles": covered.get(type_id, 0),
            "coverage": _share(covered.get(type_id, 0), profiles_reached),
            "is_pii": types[type_id].is_pii,
        }
    return {"profiles_reached": profiles_reached, "by_type": by_type}


def overlap_figures(sources: dict[int, Source], types: dict[int, IdentifierType]) -> dict:
    """For every pair of sources A, B and identifier type T: the share of A's identifiers of type T
    that B also sent (one self-join of SourceIdentifier on the identifier), plus "all" types."""
    table = connection.ops.quote_name(SourceIdentifier._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT a.source_id, b.source_id, a.identifier_type_id, COUNT(*) FROM {table} a "  # noqa: S608
            f"JOIN {table} b ON b.identifier_id = a.identifier_id AND b.source_id <> a.source_id "
            "GROUP BY a.source_id, b.source_id, a.identifier_type_id"
        )
        shared_rows = cursor.fetchall()
    totals: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for source_id, type_id, n in (
        SourceIdentifier.objects.values_list("source_id", "identifier_type_id").annotate(n=Count("id")).order_by()
    ):
        totals[source_id][types[type_id].slug] += n
        totals[source_id]["all"] += n
    shared: dict[tuple[int, int], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for a, b, type_id, n in shared_rows:
        shared[(a, b)][types[type_id].slug] += n
        shared[(a, b)]["all"] += n
    overlap: dict[str, dict[str, dict]] = {}
    for a, source_a in sources.items():
        row = {}
        for b, source_b in sources.items():
            if a == b:
                continue
            pair = shared.get((a, b), {})
            row[source_b.slug] = {
                slug: {"shared": pair.get(slug, 0), "total": total, "share": _share(pair.get(slug, 0), total)}
                for slug, total in sorted(totals.get(a, {}).items())
            }
        overlap[source_a.slug] = row
    return overlap


def matchability_figures(source: Source) -> dict:
    """Of the active people this source has sent an identifier of (all time), how many hold an
    identifier another source also sent: the people it can be matched on."""
    quote = connection.ops.quote_name
    si, identifier = quote(SourceIdentifier._meta.db_table), quote("identity_identifier")
    profile = quote("profiles_profile")
    sql = (
        "SELECT COUNT(DISTINCT i.profile_id), COUNT(DISTINCT CASE WHEN EXISTS ("  # noqa: S608
        f"SELECT 1 FROM {identifier} i2 JOIN {si} s2 ON s2.identifier_id = i2.id "
        "WHERE i2.profile_id = i.profile_id AND s2.source_id <> %s) THEN i.profile_id END) "
        f"FROM {si} s JOIN {identifier} i ON i.id = s.identifier_id JOIN {profile} p ON p.id = i.profile_id "
        "WHERE s.source_id = %s AND p.status = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [source.pk, source.pk, "active"])
        profiles, shared = cursor.fetchone()
    return {"profiles": profiles, "shared_profiles": shared, "shared_profile_share": _share(shared, profiles)}


# -- activation, exposure ----------------------------------------------------------------------


class ActivationConfig:
    """What activations use, read once per audit: activated segments (published, with an active
    sync or segment trigger), what they read, and the destinations each reaches."""

    def __init__(self):
        published = list(Segment.objects.filter(published_version__isnull=False).select_related("published_version"))
        definitions = {segment.slug: segment.published_version.definition for segment in published}
        self.destinations_by_segment: dict[int, set[str]] = defaultdict(set)
        for segment_id, slug in Sync.objects.filter(is_active=True, destination__is_active=True).values_list(
            "segment_id", "destination__slug"
        ):
            self.destinations_by_segment[segment_id].add(slug)
        self.event_trigger_destinations: dict[str, set[str]] = defaultdict(set)
        for segment_id, event_type, slug in Trigger.objects.filter(
            is_active=True, destination__is_active=True
        ).values_list("segment_id", "event_type", "destination__slug"):
            if segment_id is not None:
                self.destinations_by_segment[segment_id].add(slug)
            elif event_type:
                self.event_trigger_destinations[event_type].add(slug)
        self.segment_names = {segment.pk: segment.slug for segment in published}
        self.activated = sorted(pk for pk in self.destinations_by_segment if pk in self.segment_names)
        self.event_types: set[str] = set(self.event_trigger_destinations)
        self.trait_keys: set[str] = set()
        for segment in published:
            if segment.pk in self.destinations_by_segment:
                needs = definition_dependencies(segment.published_version.definition, definitions)
                self.event_types |= needs.event_types
                self.trait_keys |= needs.trait_keys


def activation_figures(
    events: QuerySet[Event], event_types: dict, trait_keys: list[str], config: ActivationConfig, profiles: int
) -> dict:
    members = SegmentMembership.objects.filter(
        segment_id__in=config.activated,
        exited_at__isnull=True,
        is_holdout=False,
        profile_id__in=events.values("profile_id"),
    ).order_by()
    activated = members.aggregate(n=Count("profile_id", distinct=True))["n"]
    per_segment = dict(members.values_list("segment_id").annotate(n=Count("profile_id", distinct=True)))
    destinations: dict[str, dict] = defaultdict(lambda: {"segments": {}, "event_types": []})
    for segment_id, n in sorted(per_segment.items()):
        for slug in sorted(config.destinations_by_segment.get(segment_id, ())):
            destinations[slug]["segments"][config.segment_names[segment_id]] = n
    used_types = sorted(set(event_types) & config.event_types)
    for event_type in used_types:
        for slug in sorted(config.event_trigger_destinations.get(event_type, ())):
            destinations[slug]["event_types"].append(event_type)
    revenue = events.aggregate(total=Sum("revenue"))["total"]
    return {
        "activated_profiles": activated,
        "activated_profile_share": _share(activated, profiles),
        "revenue": float(revenue or 0),
        "used_event_types": used_types,
        "used_event_type_share": _share(len(used_types), len(event_types)),
        "used_traits": sorted(set(trait_keys) & config.trait_keys),
        "destinations": {slug: destinations[slug] for slug in sorted(destinations)},
    }


def trait_keys_sent(source: Source, since: datetime) -> list[str]:
    rows = TraitValue.objects.filter(raw_event__source=source, raw_event__received_at__gte=since)
    return sorted(rows.order_by().values_list("key", flat=True).distinct())


def exposure_figures(source: Source, identifiers: dict, trait_keys: list[str]) -> dict:
    """Personal data and consent the source brings: PII identifier types it has sent, personal
    trait keys it sent in the window, and its consent records (all time) per purpose."""
    consent: dict[str, dict[str, int]] = defaultdict(lambda: {"granted": 0, "withdrawn": 0})
    records = ConsentRecord.objects.filter(source=source).order_by()
    for purpose, is_granted, n in records.values_list("purpose", "is_granted").annotate(n=Count("id")):
        consent[purpose]["granted" if is_granted else "withdrawn"] += n
    return {
        "pii_identifier_types": sorted(slug for slug, row in identifiers["by_type"].items() if row["is_pii"]),
        "pii_traits": sorted(set(trait_keys) & PII_TRAITS),
        "consent_records": sum(row["granted"] + row["withdrawn"] for row in consent.values()),
        "consent_purposes": {purpose: consent[purpose] for purpose in sorted(consent)},
    }

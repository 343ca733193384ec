"""The handoff pack: one ZIP, built in memory from the live configuration, that a partner team or a new
owner reads instead of the spreadsheets such handoffs usually live in.

- README.txt          what is inside, when it was generated
- event_mapping.csv   per source and sender topic: the canonical event, its contract, a masked sample
                      payload, the latency the consumers need, and who consumes it
- api_readiness.csv   per source and destination: auth, scopes, rate limits, retries, error codes,
                      idempotency keys, backfill, plus live checks (secrets present, last test)
- partner_matrix.csv  which source feeds which destination through which segment, sync or trigger
- runbook.md          per destination: fields, frequency, idempotency, retries, rollback steps,
                      owners, consent and deletion handling (activations.selectors.runbook() extended)
- pilot_gates.md      the go/no-go checklist as it stands, with its evidence

Everything data-derived is an aggregate query (events grouped by source, topic and type; the
latest raw event per group is read by id), so the pack costs a fixed number of queries. Sample
payloads are masked: personal fields by key name (recursively, camelCase too), emails and phone
numbers anywhere in text, and any other occurrence of a value that was masked in the same payload.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Case, CharField, Count, F, Max, Q, Value, When
from django.template.loader import render_to_string
from django.utils import timezone

from activations import domain as activations_domain
from activations.connectors import connector_for
from activations.models import Destination, Sync, Trigger
from activations.selectors import runbook, sync_frequency
from cdp_site.pii import MASK, is_pii_key, mask_phone, mask_text, mask_value
from cdp_site.pilot_gates import CONTRACT_WINDOW_DAYS, GateReport, pilot_gates_evaluate
from profiles.models import Event, EventContract, RawEvent, Source, TraitValue
from profiles.sources import signing_secrets
from segments.domain import condition_kind, definition_dependencies, walk_conditions
from segments.models import ComputedTrait, Segment, SegmentVersion

README, EVENT_MAPPING, API_READINESS, PARTNER_MATRIX, RUNBOOK, PILOT_GATES = (
    "README.txt",
    "event_mapping.csv",
    "api_readiness.csv",
    "partner_matrix.csv",
    "runbook.md",
    "pilot_gates.md",
)
FILES = (README, EVENT_MAPPING, API_READINESS, PARTNER_MATRIX, RUNBOOK, PILOT_GATES)
FILE_DESCRIPTIONS = {
    EVENT_MAPPING: (
        "One row per source, sender event and canonical event seen in the last 30 days (and per contract never "
        "seen): required and optional attributes from the contract, a masked sample payload, the latency "
        "requirement and the segments, computed traits, syncs and triggers that consume it."
    ),
    API_READINESS: (
        "One row per source and per destination: auth, scopes, rate limits, retry behaviour, error codes, "
        "idempotency key, backfill, and live checks (secrets present, last connection test, last event)."
    ),
    PARTNER_MATRIX: (
        "Which source feeds which destination, through which segment and sync or trigger, with owners and the "
        "consent purpose."
    ),
    RUNBOOK: (
        "Per destination: fields written, frequency, idempotency, retries, rollback steps, owners, consent "
        "withdrawal and deletion handling."
    ),
    PILOT_GATES: "The go/no-go checklist as evaluated when the pack was built, with each gate's evidence.",
}

EVENT_MAPPING_COLUMNS = [
    "source",
    "source_kind",
    "source_event",
    "canonical_event",
    "required_attributes",
    "optional_attributes",
    "sample_payload",
    "latency_requirement",
    "consumer_notes",
    "events_30d",
    "last_seen",
]
API_READINESS_COLUMNS = [
    "side",
    "name",
    "slug",
    "kind",
    "owner",
    "is_active",
    "auth",
    "scopes",
    "rate_limits",
    "retry_behaviour",
    "error_codes",
    "idempotency_key",
    "backfill",
    "live_checks",
    "ready",
    "problems",
]
PARTNER_MATRIX_COLUMNS = [
    "source",
    "source_kind",
    "source_owner",
    "feeds_through",
    "segment",
    "activation_type",
    "activation",
    "activation_owner",
    "activation_active",
    "mode_or_cause",
    "frequency",
    "destination",
    "destination_kind",
    "destination_owner",
    "consent_purpose",
    "holdout_percent",
]
SAMPLE_MAX_CHARS = 8000
NOT_SEEN = "(not seen in 30 days)"


@dataclass(frozen=True)
class HandoffPack:
    filename: str
    content: bytes
    generated_at: datetime
    rows: dict  # file name -> data rows written (CSV files)


def handoff_filename(now: datetime) -> str:
    return f"cdp-handoff-pack-{timezone.localdate(now):%Y-%m-%d}.zip"


# -- masking sample payloads ------------------------------------------------------------------------

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
# Personal under keys is_pii_key does not know: network addresses and location parts outside an address.
_EXTRA_KEYS = frozenset({"ip", "ipaddress", "browser_ip", "client_ip", "remote_ip", "city", "ssn", "passport"})
_PHONE_LIKE = re.compile(r"^\+?\(?\d[\d\s().-]{5,}\d$")


def _snake(key) -> str:
    return _CAMEL.sub("_", str(key)).lower().replace("-", "_")


# About a personal field rather than holding one: `email_marketing_consent`, `phone_verified`, `email_count`.
_DESCRIBING_PARTS = ("consent", "marketing", "opt_in", "verified", "subscri")
_DESCRIBING_SUFFIXES = ("_at", "_count", "_level", "_state", "_status", "_type")


def is_sensitive_key(key) -> bool:
    name = _snake(key)
    if any(part in name for part in _DESCRIBING_PARTS) or name.endswith(_DESCRIBING_SUFFIXES):
        return False
    return is_pii_key(key) or is_pii_key(name) or name in _EXTRA_KEYS or name.endswith("_ip")


_DATE_LIKE = re.compile(r"^\d{4}-\d{2}-\d{2}$|^\d{1,2}[./-]\d{1,2}[./-]\d{2,4}$")


def _looks_like_phone(text: str) -> bool:
    """A whole value shaped like a phone number written with separators (`(415) 555-0100`, `+44 20 …`);
    bare digit strings (order and customer ids) and dates stay."""
    digits = sum(ch.isdigit() for ch in text)
    return (
        bool(_PHONE_LIKE.match(text))
        and 7 <= digits <= 15
        and any(ch in text for ch in "+ ()-.")
        and not _DATE_LIKE.match(text)
    )


def _mask_leaf(key, value, personal: bool, found: set):
    if not isinstance(value, str):
        # A number under a personal key (a phone stored as a number); inside a personal object, only
        # strings are masked, so an address keeps its numeric `id` and `default` flag readable.
        if value is not None and not isinstance(value, bool) and key is not None and is_sensitive_key(key):
            if _is_phone_value(str(value)):
                found.add(str(value))
            return MASK
        return value
    if personal:
        masked = mask_value(_snake(key) if key is not None else "value", value, is_personal=True)
        if masked != value:
            found.add(value)
            if "@" not in value:  # names and address lines: their words may appear elsewhere on their own
                found.update(word for word in re.split(r"[\s,]+", value) if _is_needle(word))
        return masked
    if _looks_like_phone(value.strip()):
        found.add(value)
        return mask_phone(value)
    return mask_text(value)


_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _is_needle(word: str) -> bool:
    # Short numbers (house numbers, quantities) would mask unrelated values, and so would timestamps
    # (a person's birth date is masked where it stands); long numbers and words are personal.
    return len(word) >= 2 and not (word.isdigit() and len(word) < 5) and not _TIMESTAMP.match(word)


def _mask(value, key, personal: bool, found: set):
    if isinstance(value, dict):
        inside = personal or (key is not None and is_sensitive_key(key))
        return {
            mask_text(str(name)): _mask(item, name, inside or is_sensitive_key(name), found)
            for name, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_mask(item, key, personal, found) for item in value]
    return _mask_leaf(key, value, personal, found)


_PHONE_IN_TEXT = re.compile(r"\+?\(?\d[\d\s().-]{5,}\d")


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _is_phone_value(text: str) -> bool:
    return 7 <= len(_digits(text)) <= 15 and (_looks_like_phone(text) or text.removeprefix("+").isdigit())


def _scrub_text(text: str, pattern: re.Pattern | None, phones: tuple[str, ...]) -> str:
    if pattern is not None:
        text = pattern.sub(MASK, text)
    if phones:
        # The same number written another way ("(415) 555-0100" for +14155550100): compared by digits,
        # so dates and ids that merely look numeric stay.
        def replace(match):
            digits = _digits(match.group(0))
            is_known = len(digits) >= 7 and any(phone.endswith(digits) or digits.endswith(phone) for phone in phones)
            return mask_phone(match.group(0)) if is_known else match.group(0)

        text = _PHONE_IN_TEXT.sub(replace, text)
    return text


def _scrub(value, pattern: re.Pattern | None, phones: tuple[str, ...]):
    if isinstance(value, dict):
        return {name: _scrub(item, pattern, phones) for name, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item, pattern, phones) for item in value]
    if isinstance(value, str):
        return _scrub_text(value, pattern, phones)
    return value


def mask_payload(payload):
    """A stored payload with every personal value masked, recursively. A value masked under a personal
    key (a name, an email, a phone) is also masked wherever else it appears in the payload (a
    description "Booking for Ada Lovelace, call (415) 555-0100")."""
    found: set[str] = set()
    masked = _mask(payload, None, False, found)
    needles = sorted({needle for needle in found if _is_needle(needle)}, key=len, reverse=True)
    phones = tuple(sorted({_digits(value) for value in found if _is_phone_value(value.strip())}))
    if needles or phones:
        pattern = (
            re.compile(r"(?<!\w)(?:" + "|".join(re.escape(needle) for needle in needles) + r")(?!\w)", re.I)
            if needles
            else None
        )
        masked = _scrub(masked, pattern, phones)
    return masked


def sample_text(payload) -> str:
    if payload is None:
        return ""
    if isinstance(payload, dict) and "_purged" in payload:
        return "(purged by retention)"
    text = json.dumps(mask_payload(payload), sort_keys=True, ensure_ascii=False, default=str)
    if len(text) > SAMPLE_MAX_CHARS:
        text = text[:SAMPLE_MAX_CHARS] + " …(truncated)"
    return text


# -- what the configuration says about event types ------------------------------------------------


@dataclass
class Consumers:
    """Who consumes each canonical event type."""

    segments: dict  # event type -> [segment label]
    computed: dict  # event type -> [computed trait key]
    syncs: dict  # event type -> [sync label]
    triggers: dict  # event type -> [trigger label] (fire in real time)


def _segment_label(segment: Segment) -> str:
    return f"{segment.name} ({segment.slug})"


def _computed_keys(definition, definitions: dict) -> set[str]:
    keys: set[str] = set()

    def visit(condition: dict) -> None:
        if condition_kind(condition) == "computed":
            keys.add(condition["computed"])

    walk_conditions(definition, visit, resolve_segment=definitions.get)
    return keys


@dataclass
class SegmentNeeds:
    event_types: frozenset
    trait_keys: frozenset
    identifier_types: frozenset


def segment_needs(segments: list[Segment], computed_event_types: dict[str, str]) -> dict[int, SegmentNeeds]:
    """Per published segment: the event types it reads (directly, through referenced segments and
    through computed traits), the traits and identifier types."""
    definitions = {segment.slug: segment.published_version.definition for segment in segments}
    needs = {}
    for segment in segments:
        definition = segment.published_version.definition
        dependencies = definition_dependencies(definition, definitions)
        through_computed = {
            computed_event_types[key]
            for key in _computed_keys(definition, definitions)
            if computed_event_types.get(key)
        }
        needs[segment.pk] = SegmentNeeds(
            event_types=dependencies.event_types | frozenset(through_computed),
            trait_keys=dependencies.trait_keys,
            identifier_types=dependencies.identifier_types,
        )
    return needs


def _append(mapping: dict, key: str, value: str) -> None:
    items = mapping.setdefault(key, [])
    if value not in items:
        items.append(value)


# -- the pack ---------------------------------------------------------------------------------------


class _Builder:
    """Reads the configuration once (a fixed number of queries) and writes each file from it."""

    def __init__(self, now: datetime, report: GateReport | None):
        self.now = now
        self.since = now - timedelta(days=CONTRACT_WINDOW_DAYS)
        self.report = report
        self.sources = {
            source.pk: source
            for source in Source.objects.select_related("owner").prefetch_related("identifier_types").order_by("name")
        }
        self.destinations = list(Destination.objects.select_related("owner").order_by("name"))
        self.destination_owners = {destination.pk: destination.owner for destination in self.destinations}
        self.contracts = {contract.event_type: contract for contract in EventContract.objects.order_by("event_type")}
        self.segments = list(
            Segment.objects.filter(published_version__isnull=False).select_related("published_version").order_by("name")
        )
        self.segments_by_pk = {segment.pk: segment for segment in self.segments}
        self.computed = list(ComputedTrait.objects.order_by("key"))
        self.syncs = list(Sync.objects.select_related("segment", "destination", "owner").order_by("name"))
        self.triggers = list(Trigger.objects.select_related("segment", "destination", "owner").order_by("name"))
        computed_event_types = {trait.key: trait.event_type for trait in self.computed if trait.event_type}
        self.needs = segment_needs(self.segments, computed_event_types)
        self.mapping = self._mapping_groups()
        self.consumers = self._consumers()

    # -- data -----------------------------------------------------------------------------------
    def _mapping_groups(self) -> list[dict]:
        """(source, sender topic, sender event name for tracking `track` calls, canonical type) seen in
        the window: counts, last occurrence, and the latest raw event of the group (one GROUP BY)."""
        groups = list(
            Event.objects.filter(received_at__gte=self.since)
            .annotate(
                sender_name=Case(
                    When(Q(raw_event__topic="track"), then=F("name")), default=Value(""), output_field=CharField()
                )
            )
            .order_by()
            .values("source_id", "raw_event__topic", "sender_name", "type")
            .annotate(events=Count("id"), last_raw=Max("raw_event_id"), last_seen=Max("received_at"))
        )
        payloads = dict(
            RawEvent.objects.filter(pk__in={group["last_raw"] for group in groups}).values_list("id", "payload")
        )
        for group in groups:
            group["payload"] = payloads.get(group["last_raw"])
        groups.sort(
            key=lambda group: (
                self.sources[group["source_id"]].name,
                group["raw_event__topic"],
                group["sender_name"],
                group["type"],
            )
        )
        return groups

    def _consumers(self) -> Consumers:
        consumers = Consumers(segments={}, computed={}, syncs={}, triggers={})
        for segment in self.segments:
            for event_type in self.needs[segment.pk].event_types:
                _append(consumers.segments, event_type, _segment_label(segment))
        for trait in self.computed:
            if trait.event_type:
                _append(consumers.computed, trait.event_type, trait.key)
        for sync in self.syncs:
            if not sync.is_active or sync.segment_id not in self.needs:
                continue
            for event_type in self.needs[sync.segment_id].event_types:
                _append(consumers.syncs, event_type, f"{sync.slug} → {sync.destination.name}")
        for trigger in self.triggers:
            if not trigger.is_active:
                continue
            label = f"{trigger.slug} → {trigger.destination.name}"
            if trigger.kind == Trigger.EVENT and trigger.event_type:
                _append(consumers.triggers, trigger.event_type, label)
            elif trigger.segment_id in self.needs:
                for event_type in self.needs[trigger.segment_id].event_types:
                    _append(consumers.triggers, event_type, label)
        return consumers

    # -- event_mapping.csv ------------------------------------------------------------------------
    def _attributes(self, event_type: str, part: str) -> str:
        contract = self.contracts.get(event_type)
        if contract is None:
            return "(no contract)"
        values = getattr(contract, part) or {}
        text = "; ".join(f"{name} ({kind})" for name, kind in sorted(values.items()))
        return text + ("" if contract.is_active else " [contract switched off]")

    def _latency(self, event_type: str, source: Source | None) -> str:
        triggers = self.consumers.triggers.get(event_type)
        if triggers:
            return f"real-time: within seconds of arrival (active triggers: {', '.join(triggers)})"
        if source is None:
            return ""
        return f"within {source.freshness_sla_minutes} minutes (source freshness SLA)"

    def _notes(self, event_type: str) -> str:
        parts = []
        for label, items in (
            ("segments", self.consumers.segments.get(event_type)),
            ("computed traits", self.consumers.computed.get(event_type)),
            ("syncs", self.consumers.syncs.get(event_type)),
            ("triggers", self.consumers.triggers.get(event_type)),
        ):
            if items:
                parts.append(f"{label}: {', '.join(items)}")
        return "; ".join(parts) or "no segment, computed trait, sync or trigger uses it yet"

    def event_mapping_rows(self) -> list[list]:
        rows, seen_types = [], set()
        for group in self.mapping:
            source = self.sources[group["source_id"]]
            event_type = group["type"]
            seen_types.add(event_type)
            topic = group["raw_event__topic"] or "(none)"
            sender_event = f"{topic}: {group['sender_name']}" if group["sender_name"] else topic
            rows.append(
                [
                    source.slug,
                    source.kind,
                    mask_text(sender_event),
                    event_type,
                    self._attributes(event_type, "required"),
                    self._attributes(event_type, "optional"),
                    sample_text(group["payload"]),
                    self._latency(event_type, source),
                    self._notes(event_type),
                    group["events"],
                    _iso(group["last_seen"]),
                ]
            )
        for event_type in self.contracts:
            if event_type in seen_types:
                continue
            rows.append(
                [
                    "",
                    "",
                    NOT_SEEN,
                    event_type,
                    self._attributes(event_type, "required"),
                    self._attributes(event_type, "optional"),
                    "",
                    self._latency(event_type, None),
                    self._notes(event_type),
                    0,
                    "",
                ]
            )
        return rows

    # -- api_readiness.csv ------------------------------------------------------------------------
    def _last_events(self) -> dict[int, datetime]:
        return dict(
            RawEvent.objects.order_by()
            .values_list("source_id")
            .annotate(last=Max("received_at"))
            .values_list("source_id", "last")
        )

    def api_readiness_rows(self) -> list[list]:
        rows = []
        last_events = self._last_events()
        for source in self.sources.values():
            facts = SOURCE_FACTS[source.kind]
            checks, problems = [], []
            if not source.is_active:
                problems.append("switched off")
            if source.owner is None:
                problems.append("no owner")
            if source.kind == Source.TRACKING:
                if source.write_key_hash:
                    checks.append(f"write key set ({source.write_key_prefix}…)")
                else:
                    problems.append("no write key")
            elif source.is_webhook:
                count = len(signing_secrets(source))
                if count:
                    checks.append(f"{count} signing secret{'s' if count != 1 else ''} set")
                else:
                    problems.append("no signing secret: every webhook is refused with 401")
            last = last_events.get(source.pk)
            if last is None:
                checks.append("no event received yet")
                if source.kind != Source.CSV:
                    problems.append("nothing received yet")
            else:
                age = self.now - last
                checks.append(f"last event received {_iso(last)}")
                if source.kind != Source.CSV and age > timedelta(minutes=source.freshness_sla_minutes):
                    problems.append(f"outside its freshness SLA of {source.freshness_sla_minutes} minutes")
            limits = facts["limits"].replace("WEBHOOK_MAX_BODY_BYTES", f"{settings.WEBHOOK_MAX_BODY_BYTES:,} bytes")
            rate = (
                f"{source.rate_limit_per_second} messages/s for this source (429 with Retry-After beyond); {limits}"
                if source.kind == Source.TRACKING
                else limits
            )
            rows.append(
                [
                    "source",
                    source.name,
                    source.slug,
                    source.kind,
                    _username(source.owner),
                    _yes(source.is_active),
                    facts["auth"],
                    facts["scopes"],
                    rate,
                    facts["retries"],
                    facts["errors"],
                    facts["idempotency"],
                    facts["backfill"],
                    "; ".join(checks),
                    _yes(not problems),
                    "; ".join(problems),
                ]
            )
        for destination in self.destinations:
            connector = connector_for(destination)
            facts = DESTINATION_FACTS.get(destination.kind, {})
            problems = list(connector.check_configuration())
            if not destination.is_active:
                problems.append("switched off")
            if destination.owner is None:
                problems.append("no owner")
            if destination.last_test_ok is None:
                problems.append("connection never tested")
                test = "never tested"
            elif destination.last_test_ok:
                test = f"last test passed {_iso(destination.last_tested_at)}"
            else:
                test = f"last test failed {_iso(destination.last_tested_at)}: {destination.last_test_message}"
                problems.append("last connection test failed")
            checks = [
                f"secrets present: {', '.join(destination.secret_names) or 'none'}",
                test,
            ]
            if destination.paused_until and destination.paused_until > self.now:
                checks.append(f"paused by a 429 until {_iso(destination.paused_until)}")
            rows.append(
                [
                    "destination",
                    destination.name,
                    destination.slug,
                    destination.kind,
                    _username(destination.owner),
                    _yes(destination.is_active),
                    facts.get("auth", ""),
                    facts.get("scopes", ""),
                    f"{destination.rate_limit_per_second:g} requests/s configured (token bucket, all senders), "
                    f"{connector.batch_size} records per request; vendor: {facts.get('limits', 'n/a')}",
                    f"{connector.retry_policy}; at most {destination.max_attempts} attempts per record, then parked "
                    f"as failed (replayable); {destination.timeout_seconds:g} s timeout",
                    f"{COMMON_DESTINATION_ERRORS} {facts.get('errors', '')}".strip(),
                    f"contract field `{destination.idempotency_key}`; {facts.get('idempotency', '')}".strip("; "),
                    BACKFILL_DESTINATION,
                    "; ".join(checks),
                    _yes(not problems),
                    "; ".join(problems),
                ]
            )
        return rows

    # -- partner_matrix.csv -----------------------------------------------------------------------
    def _source_traits(self) -> dict[int, set[str]]:
        keys = set().union(*(needs.trait_keys for needs in self.needs.values())) if self.needs else set()
        traits: dict[int, set[str]] = {}
        if not keys:
            return traits
        for source_id, key in (
            TraitValue.objects.filter(key__in=keys).order_by().values_list("source_id", "key").distinct()
        ):
            traits.setdefault(source_id, set()).add(key)
        return traits

    def partner_matrix_rows(self) -> list[list]:
        source_events: dict[int, set[str]] = {}
        for group in self.mapping:
            source_events.setdefault(group["source_id"], set()).add(group["type"])
        source_traits = self._source_traits()
        source_identifiers = {
            source.pk: {kind.slug for kind in source.identifier_types.all()} for source in self.sources.values()
        }
        activations = [("sync", sync) for sync in self.syncs] + [("trigger", trigger) for trigger in self.triggers]
        rows = []
        for kind, item in activations:
            segment = item.segment
            needs = self.needs.get(segment.pk) if segment is not None else None
            event_types = set(needs.event_types) if needs else set()
            if kind == "trigger" and item.kind == Trigger.EVENT and item.event_type:
                event_types.add(item.event_type)
            trait_keys = set(needs.trait_keys) if needs else set()
            identifier_types = set(needs.identifier_types) if needs else set()
            if kind == "sync":
                detail, frequency = item.get_mode_display(), sync_frequency(item)
            else:
                detail, frequency = _trigger_cause(item), "real-time"
            common = [
                segment.name if segment is not None else "",
                kind,
                item.slug,
                _username(item.owner),
                _yes(item.is_active),
                detail,
                frequency,
                item.destination.name,
                item.destination.kind,
                _username(self.destination_owners.get(item.destination_id)),
                item.destination.consent_purpose or "(none)",
                segment.holdout_percent if segment is not None and kind == "sync" else item_holdout(item),
            ]
            matched = False
            for source in self.sources.values():
                reasons = []
                events = sorted(event_types & source_events.get(source.pk, set()))
                traits = sorted(trait_keys & source_traits.get(source.pk, set()))
                identifiers = sorted(identifier_types & source_identifiers.get(source.pk, set()))
                if events:
                    reasons.append(f"events: {', '.join(events)}")
                if traits:
                    reasons.append(f"traits: {', '.join(traits)}")
                if identifiers:
                    reasons.append(f"identifiers: {', '.join(identifiers)}")
                if not reasons:
                    continue
                matched = True
                rows.append([source.slug, source.kind, _username(source.owner), "; ".join(reasons), *common])
            if not matched:
                rows.append(
                    [
                        "",
                        "",
                        "",
                        "no source identified: nothing it reads was received in the last 30 days, or it reads only "
                        "consent, merge confidence or membership",
                        *common,
                    ]
                )
        return rows

    # -- runbook.md -------------------------------------------------------------------------------
    def runbook_entries(self) -> list[dict]:
        entries = runbook()
        user_ids = {entry["destination"].owner_id for entry in entries}
        segment_versions = set()
        for entry in entries:
            user_ids.update(row["sync"].owner_id for row in entry["syncs"])
            user_ids.update(row["trigger"].owner_id for row in entry["triggers"])
            segment_versions.update(row["sync"].segment.published_version_id for row in entry["syncs"])
        names = dict(
            get_user_model().objects.filter(pk__in={pk for pk in user_ids if pk}).values_list("pk", "username")
        )
        numbers = dict(
            SegmentVersion.objects.filter(pk__in={pk for pk in segment_versions if pk}).values_list("pk", "number")
        )
        for entry in entries:
            destination = entry["destination"]
            entry["owner"] = names.get(destination.owner_id, "")
            for row in entry["syncs"]:
                row["owner"] = names.get(row["sync"].owner_id, "")
                row["version"] = numbers.get(row["sync"].segment.published_version_id)
            for row in entry["triggers"]:
                row["owner"] = names.get(row["trigger"].owner_id, "")
            entry["rollback"] = rollback_steps(entry)
        return entries


def item_holdout(trigger: Trigger):
    if trigger.kind == Trigger.EVENT:
        return trigger.holdout_percent
    return trigger.segment.holdout_percent if trigger.segment is not None else ""


def _trigger_cause(trigger: Trigger) -> str:
    if trigger.kind == Trigger.EVENT:
        return f"event {trigger.event_type}"
    verb = "enters" if trigger.kind == Trigger.SEGMENT_ENTRY else "leaves"
    return f"a person {verb} the segment"


def _username(user) -> str:
    return user.get_username() if user is not None else ""


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _iso(value) -> str:
    return value.isoformat() if value else ""


def rollback_steps(entry: dict) -> list[str]:
    """How to take back what was sent to one destination, from its operations and what uses it."""
    destination = entry["destination"]
    operations = set(destination.operations or [])
    syncs = [row["sync"].slug for row in entry["syncs"] if row["active"]]
    triggers = [row["trigger"].slug for row in entry["triggers"] if row["active"]]
    steps = []
    stop = "Stop further sends: switch off "
    targets = []
    if syncs:
        targets.append(f"the sync{'s' if len(syncs) != 1 else ''} {', '.join(syncs)} (sync page → Edit → Active)")
    if triggers:
        targets.append(f"the trigger{'s' if len(triggers) != 1 else ''} {', '.join(triggers)}")
    steps.append(
        stop
        + (" and ".join(targets) if targets else "the destination (its edit page → Active)")
        + "; the every-minute tick then starts nothing new, and a run already sending finishes its current batch."
    )
    if activations_domain.REMOVE in operations:
        steps.append(
            "Take the audience back: roll the segment back to its last good version (segment page → Roll back, or "
            "POST /api/v1/segments/<slug>/rollback/), set the sync to mirror mode and run it, dry run first: "
            "everyone no longer in the audience is removed. Each removal carries its idempotency key, so a resend "
            "applies once."
        )
    elif activations_domain.DELETE in operations:
        steps.append(
            "This destination has no removal: people already sent stay there unless deleted. To take them back, "
            f"delete them: {entry['deletion']}. The run's records (reconciliation.csv?records=<run id>) list who "
            "was sent, by profile id."
        )
    else:
        steps.append(
            "Nothing sent can be taken back through this destination's API "
            f"({', '.join(entry['operations']) or 'no operations'}): {entry['deletion']}."
        )
    if triggers:
        steps.append("Messages already delivered by triggers cannot be recalled: tell the people affected if needed.")
    steps.append(
        "Wrong field values: fix the contract, the trait or the segment and run the sync again; changed values are "
        "re-sent (their fingerprints differ). Earlier values are not kept here, so restore them from the "
        "destination's own history if they matter."
    )
    steps.append(
        "Verify: the Reconciliation page shows the rollback run applied with a delta of 0, and a dry run plans "
        "nothing. Note the incident and who decided it in the pilot log."
    )
    return steps


def _csv_bytes(columns: list[str], rows: list[list]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows(rows)
    # A BOM so spreadsheet programs read the file as UTF-8.
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def handoff_build(*, now: datetime | None = None, report: GateReport | None = None) -> HandoffPack:
    """The whole pack as ZIP bytes. `report`: the gates already evaluated (else evaluated here)."""
    now = now or timezone.now()
    report = report or pilot_gates_evaluate(now=now)
    builder = _Builder(now, report)
    mapping_rows = builder.event_mapping_rows()
    readiness_rows = builder.api_readiness_rows()
    matrix_rows = builder.partner_matrix_rows()
    context = {"generated_at": now, "entries": builder.runbook_entries(), "report": report}
    rows = {EVENT_MAPPING: len(mapping_rows), API_READINESS: len(readiness_rows), PARTNER_MATRIX: len(matrix_rows)}
    files = {
        EVENT_MAPPING: _csv_bytes(EVENT_MAPPING_COLUMNS, mapping_rows),
        API_READINESS: _csv_bytes(API_READINESS_COLUMNS, readiness_rows),
        PARTNER_MATRIX: _csv_bytes(PARTNER_MATRIX_COLUMNS, matrix_rows),
        RUNBOOK: render_to_string("cdp_site/pilot/runbook.md", context).encode("utf-8"),
        PILOT_GATES: render_to_string("cdp_site/pilot/pilot_gates.md", context).encode("utf-8"),
    }
    readme = render_to_string(
        "cdp_site/pilot/README.txt",
        {
            "generated_at": now,
            "files": [(name, FILE_DESCRIPTIONS[name], rows.get(name)) for name in FILES if name != README],
            "report": report,
            "sources": len(builder.sources),
            "destinations": len(builder.destinations),
        },
    )
    buffer = io.BytesIO()
    stamp = timezone.localtime(now).timetuple()[:6]
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in ((README, readme.encode("utf-8")), *files.items()):
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content)
    return HandoffPack(filename=handoff_filename(now), content=buffer.getvalue(), generated_at=now, rows=rows)


def handoff_summary() -> dict:
    """What the handoff page lists before the download: counts from the configuration."""
    return {
        "sources": Source.objects.count(),
        "destinations": Destination.objects.count(),
        "syncs": Sync.objects.count(),
        "triggers": Trigger.objects.count(),
        "contracts": EventContract.objects.count(),
        "files": [
            (name, FILE_DESCRIPTIONS.get(name, "Index of the pack and when it was generated.")) for name in FILES
        ],
    }


# -- vendor and protocol facts (REFERENCE.md and the senders' and vendors' documentation) ----------

COMMON_WEBHOOK_ERRORS = (
    "200 {received: true} (a redelivery also answers 200 and stores nothing new); 400 stale or future "
    "timestamp, malformed JSON or missing event id; 401 bad or missing signature; 404 unknown source; 413 body "
    "too large; 415 not JSON. Errors are JSON {code, message}; nothing is stored on an error"
)
SOURCE_FACTS = {
    Source.TRACKING: {
        "auth": (
            "HTTP Basic: the source's write key as user name, empty password; also writeKey in the body or an "
            "X-Write-Key header (Segment HTTP tracking spec)"
        ),
        "scopes": "one write key per source: write-only, into this source's raw event log",
        "limits": "32 KB per message, 500 KB per batch (400 beyond); gzip bodies accepted",
        "retries": (
            "Segment and RudderStack SDKs retry 429 and 5xx with backoff and honour Retry-After; a batch with "
            "one invalid message is refused whole, so a retry never half-applies"
        ),
        "errors": (
            "200 ok; 400 invalid_json, invalid_gzip, batch_too_large, invalid_message, invalid_type, "
            "missing_identity, missing_event, invalid_field; 401 missing_write_key, invalid_write_key; "
            "429 rate_limited (Retry-After); errors are JSON {code, message}"
        ),
        "idempotency": "messageId (at most 100 characters; generated when missing), deduplicated per source",
        "backfill": (
            "send historic calls with their original timestamp and messageId (deduplicated), or import a CSV "
            "export into a csv source"
        ),
    },
    Source.STRIPE: {
        "auth": (
            "Stripe-Signature: t=<unix>,v1=<hex>: HMAC-SHA256 of '{t}.' + raw body with the endpoint secret "
            "(whsec_…); any v1 may match (rotation overlap); ±300 s"
        ),
        "scopes": (
            "endpoint events: customer.created, customer.updated, payment_intent.succeeded, "
            "payment_intent.payment_failed, charge.succeeded, charge.refunded (others stored, not mapped)"
        ),
        "limits": "pushed by Stripe as events happen; body at most WEBHOOK_MAX_BODY_BYTES",
        "retries": (
            "Stripe retries for up to 3 days with exponential backoff; no ordering guarantee, duplicates happen; "
            "we answer 2xx as soon as the event is stored"
        ),
        "errors": COMMON_WEBHOOK_ERRORS,
        "idempotency": "Stripe event id",
        "backfill": (
            "Stripe does not re-send old events: list them from the Stripe API (events of the last 30 days) or "
            "import a CSV export into a csv source"
        ),
    },
    Source.SHOPIFY: {
        "auth": "X-Shopify-Hmac-Sha256: base64 HMAC-SHA256 of the raw body with the app's client secret",
        "scopes": (
            "app scopes read_customers, read_orders; webhook topics customers/create, customers/update, "
            "orders/create, orders/paid, orders/cancelled, refunds/create"
        ),
        "limits": "pushed by Shopify; 5 s total timeout per delivery; body at most WEBHOOK_MAX_BODY_BYTES",
        "retries": (
            "8 retries over 4 hours with the original payload; Shopify removes subscriptions that keep failing "
            "and recommends a reconciliation job"
        ),
        "errors": COMMON_WEBHOOK_ERRORS,
        "idempotency": "X-Shopify-Event-Id",
        "backfill": "export customers and orders from Shopify (admin or Admin API) and import them as CSV",
    },
    Source.MINDBODY: {
        "auth": (
            "X-Mindbody-Signature: sha256=<base64 HMAC-SHA256 of the raw body with the subscription's "
            "messageSignatureKey>; the timestamp is not signed"
        ),
        "scopes": (
            "subscription event ids client.created, client.updated, classRosterBooking.created, "
            "classRosterBooking.cancelled, classRosterBookingStatus.updated, appointmentBooking.*, "
            "clientProfileMerger.created"
        ),
        "limits": "pushed by Mindbody; body at most WEBHOOK_MAX_BODY_BYTES",
        "retries": (
            "Mindbody redelivers failed deliveries; deduplicating messageId is the only replay defence (the "
            "timestamp is unsigned)"
        ),
        "errors": COMMON_WEBHOOK_ERRORS,
        "idempotency": "messageId; client ids scoped by site as <siteId>:<clientId>",
        "backfill": "export clients and visits from Mindbody (Public API or reports) and import them as CSV",
    },
    Source.STANDARD_WEBHOOK: {
        "auth": (
            "Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature (v1,<base64> entries); "
            "HMAC-SHA256 of '{id}.{timestamp}.{body}' with the base64 key after whsec_; ±5 minutes"
        ),
        "scopes": "the sender's event types; canonical types map as they are, others become track.custom",
        "limits": "pushed by the sender; body at most WEBHOOK_MAX_BODY_BYTES",
        "retries": (
            "the sender's retry schedule (Svix: exponential over about a day); webhook-id is stable across retries"
        ),
        "errors": COMMON_WEBHOOK_ERRORS,
        "idempotency": "webhook-id",
        "backfill": "ask the sender to replay (Svix can) or import a CSV export into a csv source",
    },
    Source.CSV: {
        "auth": "back-office login (integration engineers) or manage.py import_csv on the server",
        "scopes": "permission profiles.add_csvimport",
        "limits": "streamed in chunks; no rate limit; memory stays flat whatever the file size",
        "retries": "re-import the same file: rows keep their ids, nothing is stored twice",
        "errors": "malformed rows counted as rejected; rows without an identifier quarantined with their line number",
        "idempotency": "the external_id column, else the file's SHA-256 and the line number",
        "backfill": "this is the backfill path: map the columns once, import, re-import safely",
    },
}

COMMON_DESTINATION_ERRORS = (
    "2xx applied; 4xx or a per-record error fails only that record with the destination's message; 5xx, 408, "
    "timeouts and connection errors retried; 429 pauses the destination until Retry-After (not an attempt)."
)
BACKFILL_DESTINATION = (
    "a sync's first run sends the whole current audience (state synchronisation), later runs only the "
    "difference; triggers never backfill (events older than TRIGGER_MAX_EVENT_AGE_HOURS fire nothing)"
)
DESTINATION_FACTS = {
    Destination.WEBHOOK: {
        "auth": "Standard Webhooks signature with the destination's signing secret (webhook-signature: v1,…)",
        "scopes": "the receiver verifies the signature; no vendor scopes",
        "limits": "whatever the receiver allows",
        "errors": "any non-2xx answer as above.",
        "idempotency": "webhook-id header = the operation's idempotency key (stable on a resend)",
    },
    Destination.BRAZE: {
        "auth": "Bearer REST API key",
        "scopes": "REST API key permissions users.track and users.delete",
        "limits": (
            "/users/track 50,000 requests a minute per workspace, up to 75 attribute objects each; /users/delete "
            "20,000 a minute, 50 ids each"
        ),
        "errors": "per-object errors read by index from the response's errors array.",
        "idempotency": "external_id upsert: re-sending the same attributes is harmless",
    },
    Destination.SALESFORCE: {
        "auth": "OAuth 2.0 Bearer access token of a connected app",
        "scopes": "OAuth scope api; object and field permissions on the sObject and its external id field",
        "limits": "API calls per org per 24 hours (shared by every integration); 200 records per composite call",
        "errors": "per-record success and errors of the composite response (allOrNone false).",
        "idempotency": "upsert by the external id field: a resend updates the same record",
    },
    Destination.HUBSPOT: {
        "auth": "private app access token (Bearer)",
        "scopes": "crm.objects.contacts.read, crm.objects.contacts.write (gdpr-delete needs the write scope)",
        "limits": (
            "100 requests per rolling 10 seconds per private app (190 on Professional and Enterprise); 100 inputs "
            "per batch"
        ),
        "errors": "207 multi-status read per input (errors[].context.ids).",
        "idempotency": "batch upsert by idProperty: a resend updates the same contact",
    },
    Destination.TWILIO: {
        "auth": "HTTP Basic: Account SID and auth token",
        "scopes": "the account's Messages API (account-wide credentials, or an API key of the account)",
        "limits": "one SMS per request; about 1 message/s on a US long code, 100+ on a short code",
        "errors": "Twilio error codes in the answer (e.g. 21211 invalid To, 21610 recipient replied STOP).",
        "idempotency": "I-Twilio-Idempotency-Token header = the send's idempotency key",
    },
    Destination.META: {
        "auth": "Bearer access token (a system user of the business)",
        "scopes": "ads_management on the ad account that owns the custom audience",
        "limits": "Marketing API throttling by ad-account score; up to 10,000 rows per request",
        "errors": "Graph API errors (code, error_subcode; 190 expired token, 17 and 80004 rate limiting).",
        "idempotency": "SHA-256 of normalised identifiers: adding a person twice is a no-op; never cleartext",
    },
    Destination.CSV: {
        "auth": "none: files on the server under var/exports/",
        "scopes": "write access to the exports directory",
        "limits": "local disk",
        "errors": "disk errors fail the batch.",
        "idempotency": "a sidecar .keys file: a resent key is not written twice",
    },
}

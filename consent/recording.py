"""Recording consent from the back-office (a staff page) and the REST API.

The tracking API, webhooks and CSV imports record consent through the ingestion pipeline
(profiles.processing); these two channels come here. Both append a `ConsentRecord` carrying their
own `Source`, fold it into the profile's consent summary by the pipeline's rule (the latest capture
per purpose wins, `profiles.traits.apply_consent`), write an audit entry, and after commit
re-evaluate the profile's segments and, for a withdrawal, propagate the suppression at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from cdp_site.audit import audit_record
from consent.domain import PURPOSE_SLUGS
from consent.models import ConsentRecord
from identity.locks import identity_lock
from profiles import traits as trait_rules
from profiles.models import Profile, Source
from profiles.selectors import profile_resolve

STAFF, API = "staff", "api"
MAX_EVIDENCE_CHARS = 4000
CLOCK_SKEW = timedelta(minutes=5)  # a capture time this far ahead of our clock is refused


@dataclass(frozen=True)
class Channel:
    slug: str
    name: str


# Neither channel is a source kind of its own (Source.KINDS lists ingestion senders): both are kept
# as `tracking` sources without a write key and switched off, so nothing can ingest through them.
CHANNELS = {
    STAFF: Channel("back-office-staff", "Back-office staff"),
    API: Channel("rest-api", "REST API"),
}


class ConsentInvalid(ValueError):
    """What was wrong, per input field: {"purpose": ["..."]}."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{field}: {' '.join(messages)}" for field, messages in errors.items()))
        self.errors = errors


def channel_source(channel: str) -> Source:
    """The source a channel's records carry (created on first use)."""
    spec = CHANNELS[channel]
    source, _ = Source.objects.get_or_create(
        slug=spec.slug,
        defaults={"name": spec.name, "kind": Source.TRACKING, "is_active": False},
    )
    return source


def _validate(*, purpose, captured_at, scope, evidence, now) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if purpose not in PURPOSE_SLUGS:
        errors["purpose"] = [f"Unknown purpose {purpose!r}; one of {', '.join(sorted(PURPOSE_SLUGS))}."]
    if captured_at is not None:
        if timezone.is_naive(captured_at):
            errors["captured_at"] = ["Give a timezone (e.g. 2026-03-01T10:00:00Z)."]
        elif captured_at > now + CLOCK_SKEW:
            errors["captured_at"] = ["Consent cannot be captured in the future."]
    if len(scope or "") > 200:
        errors["scope"] = ["At most 200 characters."]
    if evidence is not None:
        if not isinstance(evidence, dict):
            errors["evidence"] = ['An object, e.g. {"form": "newsletter-2026"}.']
        elif len(json.dumps(evidence, default=str)) > MAX_EVIDENCE_CHARS:
            errors["evidence"] = [f"At most {MAX_EVIDENCE_CHARS} characters of JSON."]
    return errors


def consent_record(
    *,
    profile: Profile | int,
    purpose: str,
    is_granted: bool,
    channel: str,
    actor: str,
    captured_at: datetime | None = None,
    scope: str = "",
    evidence: dict | None = None,
) -> ConsentRecord:
    """Append one consent record for a person from a staff page (channel "staff") or the REST API
    ("api"). `actor` is "user:<name>" or "api:<name>"; it goes into the evidence as `recorded_by`.
    A merged-away profile id records on the profile it was merged into. Raises ConsentInvalid."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown consent channel {channel!r}")
    now = timezone.now()
    errors = _validate(purpose=purpose, captured_at=captured_at, scope=scope, evidence=evidence, now=now)
    profile_id = profile if isinstance(profile, int) else profile.pk
    if errors:
        raise ConsentInvalid(errors)
    with transaction.atomic():
        # The ingestion worker reads and rewrites consent summaries under this lock: taking it keeps
        # a batch from overwriting the summary with one that misses this record.
        identity_lock()
        resolved = profile_resolve(profile_id=profile_id)
        if resolved is None:
            raise ConsentInvalid({"profile": [f"No profile with id {profile_id}."]})
        if resolved.status == Profile.DELETED:
            raise ConsentInvalid({"profile": [f"Profile {profile_id} was deleted; consent cannot be recorded."]})
        person = Profile.objects.select_for_update().get(pk=resolved.pk)
        source = channel_source(channel)
        record = ConsentRecord.objects.create(
            profile=person,
            purpose=purpose,
            is_granted=bool(is_granted),
            source=source,
            captured_at=captured_at or now,
            scope=(scope or "").strip(),
            evidence={**(evidence or {}), "recorded_by": actor[:150]},
        )
        summary = dict(person.consent or {})
        trait_rules.apply_consent(
            summary, purpose, is_granted=record.is_granted, captured_at=record.captured_at, source_id=source.pk
        )
        in_force = summary != (person.consent or {})
        if in_force:
            person.consent, person.updated_at = summary, now
            person.save(update_fields=["consent", "updated_at"])
        state = "granted" if record.is_granted else "withdrawn"
        audit_record(
            actor=actor,
            action="consent.record",
            target=record,
            summary=f"{purpose} {state} for profile {person.pk} via {channel}",
            profile_id=person.pk,
            purpose=purpose,
            is_granted=record.is_granted,
            channel=channel,
            source_id=source.pk,
            in_force=in_force,
        )
        transaction.on_commit(lambda: _after_commit(record, since=now))
    return record


def _after_commit(record: ConsentRecord, *, since: datetime) -> None:
    from activations.triggers import after_batch_safely
    from consent.propagation import withdrawals_enqueue
    from segments.tasks import reevaluate_after_commit

    # The withdrawal first: suppression must not wait behind segment work.
    if not record.is_granted:
        withdrawals_enqueue([record.pk])
    reevaluate_after_commit(profile_ids=[record.profile_id], event_types=[], trait_keys=[])
    # Segment entries or exits the change caused fire their triggers now, as after ingestion.
    after_batch_safely(raw_event_ids=[], profile_ids=[record.profile_id], since=since)

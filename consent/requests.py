"""Deletion and access requests: deadlines, intake, and the step-by-step pipelines.

A deletion finds every profile the named identifiers reach, tombstones every identifier of those
profiles (keyed hashes: later events of the person are dropped at ingest), purges PII from every
table that held it, tells every destination to forget the person, then verifies. An access request
finds the same profiles and builds a downloadable archive of everything held about them.

Each step is one transaction that locks the request row, so two workers never run the same step at
once and a step that already succeeded is skipped: running a request twice does the work once, and
"retry" resumes at the step that failed. Steps log times, outcomes and counts, never PII.

Decisions worth knowing:
- Identifier rows are kept (links, merges and unmerges reference them) but emptied: value and
  ciphertext blanked, and the blind index replaced by "purged:<id>", so no keyed lookup finds the
  person any more. The tombstone (HMAC under a separate key) is the only trace of the value.
- Link, merge and unmerge evidence keeps ids, numbers and the rule/source vocabulary; any other
  text is blanked. Raw events that produced the person's rows, or mention their email, phone or
  long ids, lose their payload and headers; other people's rows that mention them are scrubbed
  string by string.
- CSV files stored for imports have the person's rows replaced by blank rows (skipped on a re-run;
  the other rows keep their line numbers and external ids).
"""

from __future__ import annotations

import calendar
import csv
import json
import logging
import os
import tempfile
import traceback
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from cdp_site.audit import audit_record
from consent import vault
from consent.guards import privacy_purge
from consent.models import ConsentRecord, PrivacyRequest, PrivacyRequestStep, SealedValue, Tombstone
from consent.sealing import (
    is_token,
    sealed_trait_value_ids,
    token_for,
    unseal_trait_dicts,
    unseal_values,
    vault_forget,
)
from consent.tombstones import tombstone_hash

logger = logging.getLogger(__name__)

# -- deadlines (pure) ---------------------------------------------------------------------------

GDPR_EXTENSION_MONTHS = 2
CCPA_DAYS = 45
CCPA_EXTENSION_DAYS = 45
CCPA_RECEIPT_BUSINESS_DAYS = 10


def add_months(moment: datetime, months: int) -> datetime:
    """The same day `months` calendar months later; the month's last day when it has no such day
    (31 January + 1 month = 28 or 29 February)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def add_business_days(moment: datetime, days: int) -> datetime:
    """`days` working days later, skipping Saturdays and Sundays."""
    current, added = moment, 0
    while added < days:
        current += timedelta(days=1)
        if current.weekday() < 5:
            added += 1
    return current


def _local(moment: datetime) -> datetime:
    return timezone.localtime(moment) if timezone.is_aware(moment) else moment


def deadline_due(regulation: str, received_at: datetime) -> datetime:
    """GDPR: one calendar month after receipt. CCPA: 45 days."""
    received = _local(received_at)
    if regulation == PrivacyRequest.GDPR:
        return add_months(received, 1)
    return received + timedelta(days=CCPA_DAYS)


def deadline_extended(regulation: str, received_at: datetime) -> datetime:
    """The one extension: GDPR two further months (three after receipt); CCPA once by 45 days."""
    received = _local(received_at)
    if regulation == PrivacyRequest.GDPR:
        return add_months(received, 1 + GDPR_EXTENSION_MONTHS)
    return received + timedelta(days=CCPA_DAYS + CCPA_EXTENSION_DAYS)


def receipt_due(regulation: str, received_at: datetime) -> datetime | None:
    """CCPA: confirm receipt within 10 business days. GDPR sets no separate receipt deadline."""
    if regulation != PrivacyRequest.CCPA:
        return None
    return add_business_days(_local(received_at), CCPA_RECEIPT_BUSINESS_DAYS)


# -- errors -------------------------------------------------------------------------------------


class RequestInvalid(ValueError):
    """The request cannot be made or changed; `errors` lists why, one message per problem."""

    def __init__(self, errors: list[str] | str):
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("; ".join(self.errors))


# -- intake ---------------------------------------------------------------------------------------


def parse_subject(lines: list[str] | str) -> list[dict]:
    """`type:value` lines to [{"type", "value"}] with values normalised as at ingest.

    Raises RequestInvalid naming each bad line (unknown type, value that does not normalise).
    """
    from identity import domain
    from identity.models import IdentifierType

    if isinstance(lines, str):
        lines = lines.splitlines()
    types = {identifier_type.slug: identifier_type for identifier_type in IdentifierType.objects.all()}
    subject, errors, seen = [], [], set()
    for number, line in enumerate(lines, start=1):
        line = str(line).strip()
        if not line:
            continue
        type_slug, separator, value = line.partition(":")
        type_slug, value = type_slug.strip(), value.strip()
        if not separator or not type_slug or not value:
            errors.append(f"line {number}: write one identifier as type:value (for example email:ana@example.com)")
            continue
        identifier_type = types.get(type_slug)
        if identifier_type is None:
            errors.append(f"line {number}: unknown identifier type {type_slug!r}; known: {', '.join(sorted(types))}")
            continue
        try:
            normalised = domain.normalise(
                identifier_type.normaliser, value, default_region=settings.PHONE_DEFAULT_REGION
            )
        except domain.InvalidIdentifier as error:
            errors.append(f"line {number}: {type_slug}: {error}")
            continue
        if (type_slug, normalised) not in seen:
            seen.add((type_slug, normalised))
            subject.append({"type": type_slug, "value": normalised})
    if errors:
        raise RequestInvalid(errors)
    if not subject:
        raise RequestInvalid("name at least one identifier, one type:value per line")
    return subject


def _enqueue(request_id: int) -> None:
    def enqueue():
        from django_q.tasks import async_task

        async_task(
            "consent.tasks_requests.privacy_request_run_task",
            request_id,
            q_options={"task_name": f"privacy_request_{request_id}"},
        )

    transaction.on_commit(enqueue)


@transaction.atomic
def privacy_request_create(
    *,
    kind: str,
    regulation: str,
    identifiers: list[str] | str,
    actor: str,
    user=None,
    received_at: datetime | None = None,
    enqueue: bool = True,
) -> PrivacyRequest:
    """Record a request (deadlines computed from when it was received) and start it."""
    errors = []
    if kind not in dict(PrivacyRequest.KINDS):
        errors.append(f"kind must be one of {', '.join(dict(PrivacyRequest.KINDS))}")
    if regulation not in dict(PrivacyRequest.REGULATIONS):
        errors.append(f"regulation must be one of {', '.join(dict(PrivacyRequest.REGULATIONS))}")
    try:
        subject = parse_subject(identifiers)
    except RequestInvalid as error:
        errors.extend(error.errors)
    if errors:
        raise RequestInvalid(errors)
    now = timezone.now()
    received_at = received_at or now
    if received_at > now + timedelta(minutes=5):
        raise RequestInvalid("the request cannot be received in the future")
    request = PrivacyRequest.objects.create(
        kind=kind,
        regulation=regulation,
        received_at=received_at,
        due_at=deadline_due(regulation, received_at),
        receipt_due_at=receipt_due(regulation, received_at),
        requested_by=user,
        subject=json.dumps(subject),
        subject_hashes=[
            {"type": item["type"], "hash": tombstone_hash(item["type"], item["value"])} for item in subject
        ],
    )
    audit_record(
        actor=actor,
        action=f"privacy.{kind}_request",
        target=request,
        summary=f"{request.get_kind_display()} request received ({request.get_regulation_display()})",
        regulation=regulation,
        identifier_types=[item["type"] for item in subject],
    )
    if enqueue:
        _enqueue(request.pk)
    return request


@transaction.atomic
def privacy_request_extend(
    *, request: PrivacyRequest, reason: str, actor: str, notified: bool = True, now: datetime | None = None
) -> PrivacyRequest:
    """Take the one extension the regulation allows. The person must be told, within the first
    period, and why: so a reason is required and a late extension is refused."""
    now = now or timezone.now()
    request = PrivacyRequest.objects.select_for_update().get(pk=request.pk)
    reason = (reason or "").strip()
    errors = []
    if request.extended_until is not None:
        errors.append("the deadline was already extended: the regulation allows one extension")
    if request.status == PrivacyRequest.COMPLETED:
        errors.append("the request is completed")
    if now > request.due_at:
        errors.append("too late: an extension must be notified within the first period")
    if not reason:
        errors.append("give the reason the person is told")
    if not notified:
        errors.append("the person must be told of the extension and its reason")
    if errors:
        raise RequestInvalid(errors)
    request.extended_until = deadline_extended(request.regulation, request.received_at)
    request.extension_reason = reason[:500]
    request.extension_notified_at = now
    request.save(update_fields=["extended_until", "extension_reason", "extension_notified_at", "updated_at"])
    audit_record(
        actor=actor,
        action="privacy.request_extended",
        target=request,
        summary=f"deadline extended to {request.extended_until:%Y-%m-%d}",
        extended_until=request.extended_until.isoformat(),
    )
    return request


@transaction.atomic
def privacy_request_confirm_receipt(*, request: PrivacyRequest, actor: str, now: datetime | None = None):
    """Record that the person was told we have their request (CCPA: within 10 business days)."""
    request = PrivacyRequest.objects.select_for_update().get(pk=request.pk)
    if request.receipt_confirmed_at is not None:
        raise RequestInvalid("receipt was already confirmed")
    request.receipt_confirmed_at = now or timezone.now()
    request.save(update_fields=["receipt_confirmed_at", "updated_at"])
    late = request.receipt_due_at is not None and request.receipt_confirmed_at > request.receipt_due_at
    audit_record(
        actor=actor,
        action="privacy.receipt_confirmed",
        target=request,
        summary="receipt confirmed" + (" late" if late else ""),
        late=late,
    )
    return request


@transaction.atomic
def privacy_request_retry(*, request: PrivacyRequest, actor: str, enqueue: bool = True) -> PrivacyRequest:
    """Resume a failed request at the step that failed (steps that succeeded are not redone)."""
    request = PrivacyRequest.objects.select_for_update().get(pk=request.pk)
    if request.status != PrivacyRequest.FAILED:
        raise RequestInvalid("only a failed request can be retried")
    request.status, request.error = PrivacyRequest.IN_PROGRESS, ""
    request.save(update_fields=["status", "error", "updated_at"])
    audit_record(actor=actor, action="privacy.request_retried", target=request, summary="retry after failure")
    if enqueue:
        _enqueue(request.pk)
    return request


# -- reads ----------------------------------------------------------------------------------------


def privacy_request_list(*, filters: dict | None = None):
    requests = PrivacyRequest.objects.select_related("requested_by")
    for name in ("status", "kind", "regulation"):
        if filters and filters.get(name):
            requests = requests.filter(**{name: filters[name]})
    return requests.order_by("-received_at", "-id")


def privacy_requests_overdue(*, now: datetime | None = None):
    now = now or timezone.now()
    return PrivacyRequest.objects.exclude(status=PrivacyRequest.COMPLETED).filter(
        Q(extended_until__isnull=True, due_at__lt=now) | Q(extended_until__lt=now)
    )


def access_archive_path(request: PrivacyRequest) -> Path | None:
    """The archive of a completed access request, if it is still there."""
    if request.kind != PrivacyRequest.ACCESS or not request.archive_path:
        return None
    path = Path(request.archive_path)
    return path if path.is_file() else None


def access_archive_open(*, request: PrivacyRequest, actor: str):
    """Open the archive for download; every download is audited."""
    path = access_archive_path(request)
    if path is None:
        raise RequestInvalid("no archive: the request has not completed, or the archive was removed")
    audit_record(
        actor=actor,
        action="privacy.access_export",
        target=request,
        summary="access archive downloaded",
        archive_sha256=request.archive_sha256,
        profiles=len(request.profiles_found),
    )
    return open(path, "rb")  # the response streams it and closes it


# -- running ----------------------------------------------------------------------------------------

DELETION_STEPS = (
    "find_profiles",
    "tombstones",
    "purge_profiles",
    "purge_identifiers",
    "purge_traits",
    "purge_events",
    "purge_files",
    "purge_raw_events",
    "purge_consent",
    "destinations",
    "purge_requests",
    "verify",
)
ACCESS_STEPS = ("find_profiles", "export")
STEP_LABELS = {
    "find_profiles": "Find every profile the identifiers reach",
    "tombstones": "Write tombstones (keyed hashes) of every identifier",
    "purge_profiles": "Empty profiles' traits and consent; mark them deleted",
    "purge_identifiers": "Blank identifiers, link and merge evidence",
    "purge_traits": "Blank trait values",
    "purge_events": "Blank event properties",
    "purge_files": "Blank the person's rows in stored CSV imports",
    "purge_raw_events": "Blank raw event payloads and headers",
    "purge_consent": "Blank consent evidence",
    "destinations": "Delete (or remove) the person in every destination",
    "purge_requests": "Remove earlier requests' copies (identifiers, access archives)",
    "verify": "Search for anything left",
    "export": "Build the access archive",
}
STALE_AFTER = timedelta(minutes=10)
SCAN_CHUNK = 50_000
NAME_TRAITS = ("name", "first_name", "last_name", "full_name")
# Evidence (and unmerge link snapshots) keep text only under these keys: vocabulary, not values.
SAFE_EVIDENCE_TEXT = frozenset(
    {"source", "event_type", "rule", "via", "level", "category", "approved_by", "status", "kind", "created_at"}
)


class StepFailed(Exception):
    """A step finished but did not achieve its purpose: the request fails with this detail."""

    def __init__(self, message: str, detail: dict):
        super().__init__(message)
        self.detail = detail


def privacy_request_run(*, request_id: int) -> PrivacyRequest:
    """Run (or resume) a request to its end. Safe to call twice, or from two workers at once."""
    from cdp_site.deployment_keys import deployment_keys_verify

    deployment_keys_verify()  # tombstones made under another key would never match: refuse first
    with transaction.atomic():
        request = PrivacyRequest.objects.select_for_update().get(pk=request_id)
        if request.status in (PrivacyRequest.COMPLETED, PrivacyRequest.FAILED):
            return request
        if request.status == PrivacyRequest.RECEIVED:
            request.status, request.started_at = PrivacyRequest.IN_PROGRESS, timezone.now()
            request.save(update_fields=["status", "started_at", "updated_at"])
    steps = DELETION_STEPS if request.kind == PrivacyRequest.DELETION else ACCESS_STEPS
    for name in steps:
        if not _run_step(request_id, name):
            return PrivacyRequest.objects.get(pk=request_id)
    return _finish(request_id)


def _run_step(request_id: int, name: str) -> bool:
    """Run one step in its own transaction; False when the request failed (or was not running)."""
    started = timezone.now()
    try:
        with transaction.atomic():
            request = PrivacyRequest.objects.select_for_update().get(pk=request_id)
            if request.status != PrivacyRequest.IN_PROGRESS:
                return False
            if request.steps.filter(
                name=name, outcome__in=[PrivacyRequestStep.OK, PrivacyRequestStep.SKIPPED]
            ).exists():
                return True
            outcome, detail = STEPS[name](request)
            PrivacyRequestStep.objects.create(
                request=request,
                name=name,
                started_at=started,
                finished_at=timezone.now(),
                outcome=outcome,
                detail=detail,
            )
            request.save(update_fields=["updated_at"])  # the heartbeat the sweeper reads
            return True
    except StepFailed as failure:
        _fail(request_id, name, started, str(failure), failure.detail)
    except Exception as error:
        logger.exception("privacy_request_step_failed request_id=%s step=%s", request_id, name)
        message = "".join(traceback.format_exception_only(type(error), error)).strip()[:500]
        _fail(request_id, name, started, message, {"error": message})
    return False


def _fail(request_id: int, name: str, started: datetime, message: str, detail: dict) -> None:
    with transaction.atomic():
        request = PrivacyRequest.objects.select_for_update().get(pk=request_id)
        PrivacyRequestStep.objects.create(
            request=request,
            name=name,
            started_at=started,
            finished_at=timezone.now(),
            outcome=PrivacyRequestStep.FAILED,
            detail=detail,
        )
        request.status, request.error = PrivacyRequest.FAILED, f"{name}: {message}"[:2000]
        request.save(update_fields=["status", "error", "updated_at"])
        audit_record(
            actor="privacy_request",
            action="privacy.request_failed",
            target=request,
            summary=f"step {name} failed",
            step=name,
        )


def _finish(request_id: int) -> PrivacyRequest:
    with transaction.atomic():
        request = PrivacyRequest.objects.select_for_update().get(pk=request_id)
        if request.status != PrivacyRequest.IN_PROGRESS:
            return request
        request.status, request.completed_at, request.error = PrivacyRequest.COMPLETED, timezone.now(), ""
        fields = ["status", "completed_at", "error", "updated_at"]
        if request.kind == PrivacyRequest.DELETION:
            # What stays: the identifiers' types and tombstone hashes, never a value.
            request.subject, request.found_identifiers = "", ""
            fields += ["subject", "found_identifiers"]
        request.save(update_fields=fields)
        audit_record(
            actor="privacy_request",
            action=f"privacy.{request.kind}_completed",
            target=request,
            summary=f"{request.get_kind_display()} request completed",
            profiles=len(request.profiles_found),
            steps=list(request.steps.values_list("name", "outcome")),
        )
    return request


def privacy_requests_sweep(*, now: datetime | None = None) -> list[int]:
    """Resume requests whose task was lost: received or in progress, and not heard of for a while."""
    cutoff = (now or timezone.now()) - STALE_AFTER
    ids = list(
        PrivacyRequest.objects.filter(
            status__in=[PrivacyRequest.RECEIVED, PrivacyRequest.IN_PROGRESS], updated_at__lt=cutoff
        ).values_list("id", flat=True)
    )
    for request_id in ids:
        _enqueue(request_id)
    return ids


# -- finding the person -----------------------------------------------------------------------------


def _lock_identity() -> None:
    # Processing resolves identity under this lock: a step holding it never interleaves with a
    # batch, so nothing joins the person between finding and tombstoning them.
    from identity.locks import identity_lock

    identity_lock()


def _profiles_reached(subject: list[dict]) -> list[int]:
    """Every profile the identifiers reach: the active profile behind each (merges followed), and
    every profile merged into those, transitively."""
    from identity.models import Identifier, IdentifierType
    from profiles.models import Profile
    from profiles.selectors import profile_resolve

    types = {identifier_type.slug: identifier_type.pk for identifier_type in IdentifierType.objects.all()}
    start = set()
    for item in subject:
        type_id = types.get(item["type"])
        if type_id is None:
            continue
        lookup_hash = vault.blind_index(item["type"], item["value"])
        start |= set(
            Identifier.objects.filter(identifier_type_id=type_id, lookup_hash=lookup_hash).values_list(
                "profile_id", flat=True
            )
        )
    found = set()
    for profile_id in start:
        root = profile_resolve(profile_id=profile_id)
        found.add(root.pk if root is not None else profile_id)
    frontier = set(found)
    while frontier:
        absorbed = set(Profile.objects.filter(merged_into_id__in=list(frontier)).values_list("id", flat=True)) - found
        found |= absorbed
        frontier = absorbed
    return sorted(found)


def _identifiers_of(profile_ids: list[int]) -> list[dict]:
    """Every identifier (decrypted) and every name the profiles hold: what the purge must remove
    and the verify step must not find."""
    from identity.models import Identifier
    from profiles.models import Profile, TraitValue

    values: list[dict] = []
    seen, sealed = set(), {}

    def add(kind: str, value) -> None:
        if isinstance(value, str) and value.strip() and (kind, value.strip()) not in seen:
            seen.add((kind, value.strip()))
            values.append({"type": kind, "value": value.strip()})

    for chunk in _chunks(profile_ids):
        for identifier in Identifier.objects.filter(profile_id__in=chunk).select_related("identifier_type"):
            add(identifier.identifier_type.slug, identifier.display_value)
        # Names are sealed traits: decrypted here, in memory only, to search for them.
        for traits in unseal_trait_dicts(
            [{"traits": traits} for traits in Profile.objects.filter(id__in=chunk).values_list("traits", flat=True)],
            cache=sealed,
        ):
            for key in NAME_TRAITS:
                add(f"trait:{key}", traits["traits"].get(key))
        rows = list(TraitValue.objects.filter(profile_id__in=chunk, key__in=NAME_TRAITS).values_list("key", "value"))
        clear = unseal_values((value for _key, value in rows), sealed)
        for key, value in rows:
            add(f"trait:{key}", clear.get(value) if is_token(value) else value)
    return values


def _chunks(ids, size: int = 500):
    ids = sorted(ids)
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _pii_types() -> set[str]:
    from identity.models import IdentifierType

    return set(IdentifierType.objects.filter(is_pii=True).values_list("slug", flat=True))


def _mention_needles(values: list[dict]) -> list[str]:
    """Text that, found anywhere, is this person: emails, phones (E.164 and national digits) and
    long identifiers. Names are left out: other people share them."""
    import phonenumbers

    pii = _pii_types()
    needles = set()
    for item in values:
        kind, value = item["type"], item["value"]
        if kind.startswith("trait:"):
            continue
        if kind == "phone":
            needles.add(value)
            try:
                national = str(phonenumbers.parse(value, None).national_number)
            except phonenumbers.NumberParseException:
                national = ""
            if len(national) >= 7:
                needles.add(national)
        elif kind in pii or len(value) >= 8:
            needles.add(value)
    return sorted(needles)


def _all_needles(values: list[dict]) -> list[str]:
    """Mention needles plus names, for searching rows known to be the person's."""
    names = {item["value"] for item in values if item["type"].startswith("trait:") and len(item["value"]) >= 3}
    return sorted(set(_mention_needles(values)) | names)


def _mentioning(model, fields: list[str], needles: list[str], exclude: set[int] | None = None) -> list[int]:
    """Ids of rows whose fields contain any needle (case-insensitive), read in id ranges."""
    if not needles:
        return []
    condition = Q()
    for field in fields:
        for needle in needles:
            condition |= Q(**{f"{field}__icontains": needle})
    top = model.objects.aggregate(top=Max("id"))["top"] or 0
    found = []
    for start in range(0, top + 1, SCAN_CHUNK):
        rows = model.objects.filter(id__gte=start, id__lt=start + SCAN_CHUNK).filter(condition)
        found += [row_id for row_id in rows.values_list("id", flat=True) if not exclude or row_id not in exclude]
    return found


def _contains(value, needles_lower: list[str]) -> bool:
    if value is None:
        return False
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = text.lower()
    return any(needle in text for needle in needles_lower)


def _scrub(value, needles_lower: list[str]):
    """The same JSON without what mentions the person: such strings become empty, such numbers
    null, and keys that mention them go with their values."""
    if isinstance(value, dict):
        return {
            key: _scrub(item, needles_lower) for key, item in value.items() if not _contains(str(key), needles_lower)
        }
    if isinstance(value, list):
        return [_scrub(item, needles_lower) for item in value]
    if isinstance(value, str) and _contains(value, needles_lower):
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool) and _contains(str(value), needles_lower):
        return None
    return value


def _scrub_evidence(value, key: str | None = None):
    """Evidence keeps ids, numbers and the rule/source vocabulary; other text is blanked."""
    if isinstance(value, dict):
        return {name: _scrub_evidence(item, name) for name, item in value.items()}
    if isinstance(value, list):
        return [_scrub_evidence(item, key) for item in value]
    if isinstance(value, str) and key not in SAFE_EVIDENCE_TEXT:
        return ""
    return value


def _raw_event_ids(request: PrivacyRequest) -> set[int]:
    """Raw events that produced the person's rows, or that mention them anywhere."""
    from identity.models import Identifier, IdentityLink, Merge
    from profiles.models import Event, RawEvent, TraitValue

    profile_ids = request.profiles_found
    ids: set[int] = set()
    for chunk in _chunks(profile_ids):
        ids |= set(Event.objects.filter(profile_id__in=chunk).values_list("raw_event_id", flat=True))
        ids |= set(TraitValue.objects.filter(profile_id__in=chunk).values_list("raw_event_id", flat=True))
        ids |= set(ConsentRecord.objects.filter(profile_id__in=chunk).values_list("raw_event_id", flat=True))
        identifier_ids = list(Identifier.objects.filter(profile_id__in=chunk).values_list("id", flat=True))
        for id_chunk in _chunks(identifier_ids):
            links = IdentityLink.objects.filter(Q(from_identifier_id__in=id_chunk) | Q(to_identifier_id__in=id_chunk))
            ids |= {(evidence or {}).get("raw_event_id") for evidence in links.values_list("evidence", flat=True)}
        merges = Merge.objects.filter(Q(survivor_id__in=chunk) | Q(absorbed_id__in=chunk))
        ids |= {(evidence or {}).get("raw_event_id") for evidence in merges.values_list("evidence", flat=True)}
    ids = {raw_id for raw_id in ids if isinstance(raw_id, int)}
    needles = _mention_needles(request.found_values)
    ids |= set(_mentioning(RawEvent, ["payload", "headers"], needles, exclude=ids))
    return ids


# -- deletion steps -----------------------------------------------------------------------------


def _step_find_profiles(request: PrivacyRequest):
    if request.kind == PrivacyRequest.DELETION:
        _lock_identity()
    request.profiles_found = _profiles_reached(request.subject_identifiers)
    request.save(update_fields=["profiles_found"])
    return PrivacyRequestStep.OK, {"profiles": len(request.profiles_found)}


def _step_tombstones(request: PrivacyRequest):
    # Found again under the lock: whatever joined the person since the first step is included, and
    # once these tombstones commit nothing more can join (processing drops it).
    _lock_identity()
    profile_ids = sorted(set(_profiles_reached(request.subject_identifiers)) | set(request.profiles_found))
    found = _identifiers_of(profile_ids)
    identifiers = [item for item in [*request.subject_identifiers, *found] if not item["type"].startswith("trait:")]
    rows = {}
    for item in identifiers:
        key_hash = tombstone_hash(item["type"], item["value"])
        rows[key_hash] = Tombstone(
            identifier_type=item["type"], key_hash=key_hash, reason=f"deletion request {request.pk}"
        )
    before = Tombstone.objects.filter(key_hash__in=list(rows)).count()
    Tombstone.objects.bulk_create(list(rows.values()), ignore_conflicts=True, batch_size=500)
    # Values found earlier stay listed: a retry after the identifiers were purged still verifies them.
    previous = request.found_values
    known = {(item["type"], item["value"]) for item in found}
    found += [item for item in previous if (item["type"], item["value"]) not in known]
    request.profiles_found = profile_ids
    request.found_identifiers = json.dumps(found)
    request.save(update_fields=["profiles_found", "found_identifiers"])
    return PrivacyRequestStep.OK, {
        "profiles": len(profile_ids),
        "tombstones": len(rows),
        "tombstones_new": len(rows) - before,
    }


def _step_purge_profiles(request: PrivacyRequest):
    from identity.models import MatchKey
    from profiles.models import Profile
    from segments.models import ComputedTraitValue

    _lock_identity()
    profiles = match_keys = computed = 0
    for chunk in _chunks(request.profiles_found):
        profiles += Profile.objects.filter(id__in=chunk).update(
            status=Profile.DELETED, traits={}, trait_provenance={}, consent={}, updated_at=timezone.now()
        )
        # Blocking keys are built from names and dates of birth; computed values may copy properties.
        match_keys += MatchKey.objects.filter(profile_id__in=chunk).delete()[0]
        computed += ComputedTraitValue.objects.filter(profile_id__in=chunk).delete()[0]
    return PrivacyRequestStep.OK, {"profiles": profiles, "match_keys": match_keys, "computed_trait_values": computed}


def _step_purge_identifiers(request: PrivacyRequest):
    from django.contrib.admin.models import LogEntry
    from django.contrib.contenttypes.models import ContentType

    from cdp_site.db import update_rows
    from identity.models import Identifier, IdentityLink, Merge, Unmerge

    _lock_identity()
    identifier_ids: list[int] = []
    for chunk in _chunks(request.profiles_found):
        identifier_ids += list(Identifier.objects.filter(profile_id__in=chunk).values_list("id", flat=True))
    # The blind index goes too ("purged:<id>" keeps the unique constraint): the tombstone, under a
    # separate key, is the only trace left of the value.
    update_rows(
        Identifier, ["value", "encrypted_value", "lookup_hash"], [(i, "", "", f"purged:{i}") for i in identifier_ids]
    )
    links = []
    for chunk in _chunks(identifier_ids):
        rows = IdentityLink.objects.filter(Q(from_identifier_id__in=chunk) | Q(to_identifier_id__in=chunk))
        links += list(rows.values_list("id", "evidence"))
    update_rows(
        IdentityLink, ["evidence", "review_note"], [(i, _scrub_evidence(e or {}), "") for i, e in _unique_rows(links)]
    )
    # An erased person is never merged: links still waiting for a reviewer are rejected.
    rejected = 0
    for chunk in _chunks([link_id for link_id, _ in _unique_rows(links)]):
        rejected += IdentityLink.objects.filter(id__in=chunk, status=IdentityLink.PENDING_REVIEW).update(
            status=IdentityLink.REJECTED,
            reason=f"the person was erased (privacy request {request.pk})",
            reviewed_by="privacy_request",
            reviewed_at=timezone.now(),
        )
    merges, unmerges = [], []
    for chunk in _chunks(request.profiles_found):
        merges += list(
            Merge.objects.filter(Q(survivor_id__in=chunk) | Q(absorbed_id__in=chunk)).values_list("id", "evidence")
        )
        unmerges += list(
            Unmerge.objects.filter(Q(restored_id__in=chunk) | Q(remaining_id__in=chunk)).values_list(
                "id", "rejected_links"
            )
        )
    update_rows(Merge, ["evidence"], [(i, _scrub_evidence(e or {})) for i, e in _unique_rows(merges)])
    update_rows(
        Unmerge, ["rejected_links", "reason"], [(i, _scrub_evidence(r or []), "") for i, r in _unique_rows(unmerges)]
    )
    # The admin's change log names an identifier by its value (Identifier.__str__).
    log_entries = 0
    content_type = ContentType.objects.get_for_model(Identifier)
    for chunk in _chunks(identifier_ids):
        log_entries += LogEntry.objects.filter(content_type=content_type, object_id__in=[str(i) for i in chunk]).update(
            object_repr=f"{content_type.model} (purged)", change_message=""
        )
    return PrivacyRequestStep.OK, {
        "identifiers": len(identifier_ids),
        "links": len(_unique_rows(links)),
        "pending_links_rejected": rejected,
        "merges": len(_unique_rows(merges)),
        "unmerges": len(_unique_rows(unmerges)),
        "admin_log_entries": log_entries,
    }


def _unique_rows(rows: list[tuple]) -> list[tuple]:
    """Rows (id first) without duplicates, in id order."""
    return sorted({row[0]: row for row in rows}.values(), key=lambda row: row[0])


def _scrub_mentions(model, field: str, ids: list[int], needles_lower: list[str]) -> int:
    from cdp_site.db import update_rows

    rows = []
    for chunk in _chunks(ids):
        for row_id, value in model.objects.filter(id__in=chunk).values_list("id", field):
            scrubbed = _scrub(value, needles_lower)
            if scrubbed != value:
                rows.append((row_id, scrubbed))
    update_rows(model, [field], rows)
    return len(rows)


def _step_purge_traits(request: PrivacyRequest):
    from profiles.models import TraitValue

    blanked, tokens = 0, set()
    for chunk in _chunks(request.profiles_found):
        rows = TraitValue.objects.filter(profile_id__in=chunk)
        tokens.update(value for value in rows.values_list("value", flat=True) if is_token(value))
        blanked += rows.update(value=None)
    # Other people's trait values that mention the person (a referrer's email, say): in cleartext
    # (stored before sealing, or under a key that is not personal) and sealed (the token of the value).
    needles = _mention_needles(request.found_values)
    mentions = _mentioning(TraitValue, ["value"], needles)
    scrubbed = _scrub_mentions(TraitValue, "value", mentions, [n.lower() for n in needles])
    mention_tokens = sorted({token_for(needle) for needle in needles})
    scrubbed += TraitValue.objects.filter(id__in=sealed_trait_value_ids(mention_tokens)).update(value=None)
    # The sealed values go too: the person's own unless someone else holds the same (a shared first
    # name), and their email or phone wherever it was held.
    forgotten = vault_forget(tokens) + vault_forget(mention_tokens, force=True)
    return PrivacyRequestStep.OK, {
        "trait_values": blanked,
        "other_trait_values_scrubbed": scrubbed,
        "sealed_values_forgotten": forgotten,
    }


def _step_purge_events(request: PrivacyRequest):
    from profiles.models import Event

    blanked = 0
    # Type, time and revenue stay, so aggregates (revenue, counts) still add up.
    for chunk in _chunks(request.profiles_found):
        blanked += Event.objects.filter(profile_id__in=chunk).update(properties={}, name="")
    needles = _mention_needles(request.found_values)
    mentions = _mentioning(Event, ["properties"], needles)
    scrubbed = _scrub_mentions(Event, "properties", mentions, [n.lower() for n in needles])
    return PrivacyRequestStep.OK, {"events": blanked, "other_events_scrubbed": scrubbed}


def _step_purge_files(request: PrivacyRequest):
    """Stored CSV imports: the person's rows become blank rows. Before the raw events are blanked,
    which say which import and row they came from."""
    from profiles.models import CsvImport, RawEvent, Source

    lines: dict[int, set[int]] = {}
    raw_ids = _raw_event_ids(request)
    for chunk in _chunks(raw_ids):
        for payload in RawEvent.objects.filter(id__in=chunk, source__kind=Source.CSV).values_list("payload", flat=True):
            if isinstance(payload, dict) and isinstance(payload.get("import_id"), int) and payload.get("line"):
                lines.setdefault(payload["import_id"], set()).add(int(payload["line"]))
    detail = {"csv_imports": 0, "csv_rows": 0, "csv_missing_files": 0}
    for csv_import in CsvImport.objects.filter(id__in=list(lines)).order_by("id"):
        path = Path(csv_import.file_path) if csv_import.file_path else None
        if path is None or not path.is_file():
            detail["csv_missing_files"] += 1
            continue
        detail["csv_rows"] += _blank_csv_rows(path, lines[csv_import.pk])
        detail["csv_imports"] += 1
    return PrivacyRequestStep.OK, detail


def _blank_csv_rows(path: Path, line_numbers: set[int]) -> int:
    """Rewrite a CSV with these rows (numbered as the import numbers them: header is 1) blank.
    Written to a temporary file and swapped in, so a crash leaves the old file whole."""
    blanked = 0
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".privacy-", suffix=".csv")
    try:
        with (
            open(path, encoding="utf-8-sig", newline="") as source,
            os.fdopen(handle, "w", encoding="utf-8", newline="") as target,
        ):
            writer = csv.writer(target)
            for number, row in enumerate(csv.reader(source), start=1):
                if number in line_numbers and any(value.strip() for value in row):
                    writer.writerow([])
                    blanked += 1
                else:
                    writer.writerow(row)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return blanked


def _step_purge_raw_events(request: PrivacyRequest):
    from cdp_site.db import update_rows
    from profiles.models import RawEvent

    raw_ids = _raw_event_ids(request)
    needles = [needle.lower() for needle in _all_needles(request.found_values)]
    blanked, renamed = 0, []
    for chunk in _chunks(raw_ids):
        blanked += RawEvent.objects.filter(id__in=chunk).update(payload={}, headers={}, error="")
        # A sender's event id is the deduplication key, kept unless it names the person. Renamed,
        # a redelivery is stored again, and dropped at processing by the tombstones.
        for raw_id, external_id, topic in RawEvent.objects.filter(id__in=chunk).values_list(
            "id", "external_id", "topic"
        ):
            if _contains(external_id, needles) or _contains(topic, needles):
                renamed.append((raw_id, f"purged:{raw_id}", ""))
    update_rows(RawEvent, ["external_id", "topic"], renamed)
    return PrivacyRequestStep.OK, {"raw_events": blanked, "external_ids_renamed": len(renamed)}


def _step_purge_consent(request: PrivacyRequest):
    blanked = 0
    with privacy_purge():
        for chunk in _chunks(request.profiles_found):
            blanked += ConsentRecord.objects.filter(profile_id__in=chunk).update(evidence={})
    return PrivacyRequestStep.OK, {"consent_records": blanked}


def _step_destinations(request: PrivacyRequest):
    from activations.direct import forget_in_destinations, purge_activation_copies

    outcomes = [outcome.as_dict() for outcome in forget_in_destinations(profile_ids=request.profiles_found)]
    hashes = purge_activation_copies(request.profiles_found)  # already done once by forget: counts the rows
    applied = {(item["sync"], item["profile_id"]) for item in outcomes if item["ok"]}
    # A destination that failed on an earlier attempt must have applied it since.
    earlier = [
        item
        for step in request.steps.filter(name="destinations", outcome=PrivacyRequestStep.FAILED)
        for item in step.detail.get("outcomes", [])
        if not item.get("ok")
    ]
    unresolved = [item for item in earlier if (item["sync"], item["profile_id"]) not in applied]
    failed = [item for item in outcomes if not item["ok"]]
    detail = {
        "outcomes": outcomes,
        "sent": len(outcomes),
        "applied": len(applied),
        "failed": len(failed),
        "unresolved_earlier": unresolved,
        "fingerprints_blanked": hashes,
    }
    if failed or unresolved:
        syncs = sorted({item["sync"] for item in [*failed, *unresolved]})
        raise StepFailed(
            f"{len(failed) + len(unresolved)} destination operations not applied: {', '.join(syncs)}", detail
        )
    return PrivacyRequestStep.OK, detail


def _step_purge_requests(request: PrivacyRequest):
    """Earlier requests of the same person keep no copy: their identifiers are blanked (the
    hashes stay) and access archives are deleted. Requests still running are left alone."""
    hashes = {tombstone_hash(item["type"], item["value"]) for item in request.found_values if ":" not in item["type"]}
    hashes |= {item["hash"] for item in request.subject_hashes}
    profiles = set(request.profiles_found)
    purged = archives = 0
    others = PrivacyRequest.objects.exclude(pk=request.pk).filter(
        status__in=[PrivacyRequest.COMPLETED, PrivacyRequest.FAILED]
    )
    for other in others.select_for_update():
        theirs = {item["hash"] for item in other.subject_hashes}
        if not (theirs & hashes or set(other.profiles_found) & profiles):
            continue
        if other.archive_path:
            Path(other.archive_path).unlink(missing_ok=True)
            archives += 1
        if other.subject or other.found_identifiers or other.archive_path:
            PrivacyRequest.objects.filter(pk=other.pk).update(
                subject="", found_identifiers="", archive_path="", updated_at=timezone.now()
            )
            purged += 1
    return PrivacyRequestStep.OK, {"requests": purged, "archives_deleted": archives}


def _step_verify(request: PrivacyRequest):
    """Look for the person: keyed lookups of every identifier, then their values and names in every
    row the purge touched, and their email/phone anywhere in raw events, events and trait values."""
    from identity.models import Identifier, IdentifierType, IdentityLink, Merge
    from profiles.models import Event, Profile, RawEvent, TraitValue

    values = request.found_values or request.subject_identifiers
    types = dict(IdentifierType.objects.values_list("slug", "id"))
    residue: dict[str, int] = {}

    def found(table: str, count: int) -> None:
        if count:
            residue[table] = residue.get(table, 0) + count

    for item in values:
        if item["type"] in types:
            found(
                "identity_identifier (blind index)",
                Identifier.objects.filter(
                    identifier_type_id=types[item["type"]], lookup_hash=vault.blind_index(item["type"], item["value"])
                ).count(),
            )
    tombstones = {tombstone_hash(item["type"], item["value"]) for item in request.subject_identifiers}
    missing = len(tombstones) - Tombstone.objects.filter(key_hash__in=list(tombstones)).count()
    found("consent_tombstone (missing)", missing)

    needles = [needle.lower() for needle in _all_needles(values)]
    profile_ids = request.profiles_found
    for chunk in _chunks(profile_ids):
        found(
            "profiles_profile (not deleted)",
            Profile.objects.filter(id__in=chunk).exclude(status=Profile.DELETED).count(),
        )
        for traits, provenance, consent in Profile.objects.filter(id__in=chunk).values_list(
            "traits", "trait_provenance", "consent"
        ):
            found("profiles_profile", int(_contains([traits, provenance, consent], needles) or bool(traits)))
        identifiers = list(Identifier.objects.filter(profile_id__in=chunk))
        found("identity_identifier", sum(1 for i in identifiers if i.value or i.encrypted_value))
        ids = [identifier.pk for identifier in identifiers]
        for id_chunk in _chunks(ids):
            for evidence, note in IdentityLink.objects.filter(
                Q(from_identifier_id__in=id_chunk) | Q(to_identifier_id__in=id_chunk)
            ).values_list("evidence", "review_note"):
                found("identity_identitylink", int(_contains([evidence, note], needles)))
        for evidence in Merge.objects.filter(Q(survivor_id__in=chunk) | Q(absorbed_id__in=chunk)).values_list(
            "evidence", flat=True
        ):
            found("identity_merge", int(_contains(evidence, needles)))
        for value in TraitValue.objects.filter(profile_id__in=chunk).values_list("value", flat=True):
            found("profiles_traitvalue", int(value is not None))
        for properties, name in Event.objects.filter(profile_id__in=chunk).values_list("properties", "name"):
            found("profiles_event", int(bool(properties) or bool(name)))
        for evidence in ConsentRecord.objects.filter(profile_id__in=chunk).values_list("evidence", flat=True):
            found("consent_consentrecord", int(bool(evidence)))
    for chunk in _chunks(_raw_event_ids(request)):
        for payload, headers, error, external_id, topic in RawEvent.objects.filter(id__in=chunk).values_list(
            "payload", "headers", "error", "external_id", "topic"
        ):
            found(
                "profiles_rawevent",
                int(bool(payload) or bool(headers) or _contains([error, external_id, topic], needles)),
            )
    mention = _mention_needles(values)
    found("profiles_rawevent (mentions)", len(_mentioning(RawEvent, ["payload", "headers"], mention)))
    found("profiles_event (mentions)", len(_mentioning(Event, ["properties"], mention)))
    found("profiles_traitvalue (mentions)", len(_mentioning(TraitValue, ["value"], mention)))
    # Sealed values: the person's email or phone in the vault at all, or a name nobody else holds.
    mention_tokens = sorted({token_for(needle) for needle in mention})
    found("consent_sealedvalue", SealedValue.objects.filter(token__in=mention_tokens).count())
    name_tokens = sorted({token_for(item["value"]) for item in values if item["type"].startswith("trait:")})
    held = sealed_trait_value_ids(name_tokens, tokens_only=True)
    found(
        "consent_sealedvalue (names)",
        SealedValue.objects.filter(token__in=[token for token in name_tokens if token not in held]).count(),
    )
    detail = {"checked_values": len(values), "profiles": len(profile_ids), "residue": residue}
    if residue:
        raise StepFailed(f"data of the person is still held in {', '.join(sorted(residue))}", detail)
    return PrivacyRequestStep.OK, detail


# -- access steps ---------------------------------------------------------------------------------


def _step_export(request: PrivacyRequest):
    from consent.access_export import access_archive_build

    directory = Path(getattr(settings, "PRIVACY_EXPORT_DIR", None) or Path(settings.VAR_DIR) / "exports" / "access")
    if request.archive_path:
        Path(request.archive_path).unlink(missing_ok=True)  # a retry builds it afresh
    archive = access_archive_build(request=request, directory=directory)
    request.archive_path, request.archive_sha256, request.archive_bytes = (
        str(archive.path),
        archive.sha256,
        archive.size,
    )
    request.save(update_fields=["archive_path", "archive_sha256", "archive_bytes"])
    return PrivacyRequestStep.OK, {"files": archive.counts, "bytes": archive.size}


STEPS: dict[str, Callable[[PrivacyRequest], tuple[str, dict]]] = {
    "find_profiles": _step_find_profiles,
    "tombstones": _step_tombstones,
    "purge_profiles": _step_purge_profiles,
    "purge_identifiers": _step_purge_identifiers,
    "purge_traits": _step_purge_traits,
    "purge_events": _step_purge_events,
    "purge_files": _step_purge_files,
    "purge_raw_events": _step_purge_raw_events,
    "purge_consent": _step_purge_consent,
    "destinations": _step_destinations,
    "purge_requests": _step_purge_requests,
    "verify": _step_verify,
    "export": _step_export,
}

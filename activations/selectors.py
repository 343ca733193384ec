"""Read-side of activations: reconciliation figures, the runbook, what a dry run would send.

The pages, the API and the CSV exports all read these, so they show the same numbers.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from django.db.models import Count, F, Prefetch, Sum, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from activations import domain
from activations.connectors import ConnectorError, Outbound, connector_for
from activations.models import Destination, Sync, SyncRecord, SyncRun, Trigger
from activations.syncs import OPERATION_ORDER, record_idempotency_key, sync_problems
from consent.domain import PURPOSES

logger = logging.getLogger(__name__)

RECONCILIATION_DAYS = 30
# Runs whose numbers are final; a run in progress would show its unsent operations as unapplied.
FINISHED = (SyncRun.COMPLETED, SyncRun.FAILED, SyncRun.PAUSED)
SKIP_LABELS = dict(domain.SKIP_REASONS)
TRIGGER_SKIP_LABELS = dict(domain.TRIGGER_SKIP_REASONS)
OPERATION_LABELS = dict(domain.OPERATIONS) | {domain.MESSAGE: "Message"}
PURPOSE_LABELS = dict(PURPOSES)
MODE_LABELS = dict(domain.MODES)
RETRY_TAIL = "exponential backoff with jitter, Retry-After honoured"
CONSENT_HANDLING = (
    "a withdrawal removes the person from every synced audience at once (a delete where the contract has no "
    "removal), recorded per destination on the Consent propagation page; every run and every send checks it "
    "again; triggers skip"
)


def percent(share: float | None) -> float:
    return round((share or 0.0) * 100, 1)


# -- destinations ----------------------------------------------------------------------------------


def contract_rows(destination: Destination) -> list[dict]:
    """The contract as sent: each field, its source, and whether its value goes hashed or in clear."""
    hashed = destination.pii_mode == domain.HASHED
    try:
        contract = destination.contract
    except domain.ContractViolation:
        return []
    return [
        {
            "name": field.name,
            "source": field.source,
            "pii": field.pii,
            "hashed": field.pii and hashed,
            "sent": "hashed (SHA-256 of the normalised value)" if field.pii and hashed else "cleartext",
            "is_key": field.name == destination.idempotency_key,
        }
        for field in contract
    ]


# -- syncs and runs ---------------------------------------------------------------------------------


def sync_config_errors(sync: Sync) -> dict[str, list[str]]:
    """What `sync_problems` says, attached to the setting each problem is about.

    A switched-off sync may be saved while its destination is misconfigured (it cannot run
    anyway); its own mode and fields must still fit the destination's contract."""
    errors: dict[str, list[str]] = {}
    for problem in sync_problems(sync):
        if problem == "the sync is switched off":
            continue
        if problem.startswith("fields outside"):
            field = "fields"
        elif problem.startswith("the destination's contract does not allow"):
            field = "mode"
        elif "segment" in problem:
            field = "segment"
        else:
            field = "destination"
            if not sync.is_active:
                continue
        errors.setdefault(field, []).append(problem)
    return errors


def labelled_counts(counts: dict | None, labels: dict) -> list[dict]:
    """{"consent": 3} -> [{"code": "consent", "label": "No consent for ...", "count": 3}], largest first."""
    return [
        {"code": code, "label": labels.get(code, code), "count": count}
        for code, count in sorted((counts or {}).items(), key=lambda item: (-item[1], item[0]))
    ]


def run_summary(run: SyncRun) -> dict:
    return {
        "skipped": labelled_counts(run.skipped_reasons, SKIP_LABELS),
        "operations": labelled_counts(run.operations, OPERATION_LABELS),
        "delta_percent": None if run.is_dry_run else percent(run.reconciliation_delta),
        "record_counts": dict(
            SyncRecord.objects.filter(run=run).order_by().values_list("status").annotate(n=Count("id"))
        ),
    }


def with_delta(runs) -> list[SyncRun]:
    """Runs with `delta_percent` set, for templates (None for dry runs: they apply nothing by design)."""
    runs = list(runs)
    for run in runs:
        run.delta_percent = None if run.is_dry_run else percent(run.reconciliation_delta)
    return runs


def dry_run_requests(run: SyncRun, batches: int = 3) -> list[dict]:
    """The first `batches` batches of a dry run exactly as the connector would send them (secret
    headers redacted), built the way a real run builds them."""
    if not run.is_dry_run:
        return []
    connector = connector_for(run.sync.destination)
    size = connector.batch_size
    shown: list[dict] = []
    for operation in OPERATION_ORDER:
        left = batches - len(shown)
        if left <= 0:
            break
        records = list(
            SyncRecord.objects.filter(run=run, status=SyncRecord.DRY_RUN, operation=operation).order_by("id")[
                : left * size
            ]
        )
        for start in range(0, len(records), size):
            chunk = records[start : start + size]
            outbound = [
                Outbound(
                    id=record.pk,
                    operation=operation,
                    key=record.key,
                    fields=record.payload_values,
                    idempotency_key=record_idempotency_key(record),
                    audience=run.sync.slug,
                )
                for record in chunk
            ]
            batch = {"operation": operation, "record_ids": [record.pk for record in chunk], "requests": [], "error": ""}
            try:
                prepared = connector.prepare(operation, outbound)
            except (domain.ContractViolation, ConnectorError) as error:
                batch["error"] = str(error)
            except Exception as error:  # a preview must not break the page; a real run would fail the same way
                logger.exception("dry_run_preview_failed run=%s", run.pk)
                batch["error"] = f"{type(error).__name__}: {error}"
            else:
                for request in prepared:
                    shown_request = request.display()
                    body = shown_request["body"]
                    shown_request["body_text"] = (
                        body if isinstance(body, str) else json.dumps(body, indent=2, sort_keys=True, default=str)
                    )
                    batch["requests"].append(shown_request)
            shown.append(batch)
    return shown


# -- reconciliation ---------------------------------------------------------------------------------


def reconciliation_since(days: int = RECONCILIATION_DAYS):
    return timezone.now() - timedelta(days=days)


def reconciliation_runs(since):
    """Real (not dry) runs created since `since`, newest first."""
    return (
        SyncRun.objects.filter(is_dry_run=False, created_at__gte=since)
        .select_related("sync__destination", "sync__segment", "segment_version")
        .order_by("-created_at", "-id")
    )


def reconciliation_by_destination(since) -> list[dict]:
    """Per destination, over finished real runs since `since`: runs, planned, applied, failed,
    unapplied (planned minus applied, per run) and the delta (unapplied share of planned)."""
    totals = {
        row["sync__destination_id"]: row
        for row in SyncRun.objects.filter(is_dry_run=False, created_at__gte=since, status__in=FINISHED)
        .order_by()
        .values("sync__destination_id")
        .annotate(
            n_runs=Count("id"),
            n_planned=Sum("planned"),
            n_applied=Sum("applied"),
            n_failed=Sum("failed"),
            n_skipped=Sum("skipped"),
            n_unapplied=Sum(Greatest(F("planned") - F("applied"), Value(0))),
        )
    }
    in_progress = dict(
        SyncRun.objects.filter(is_dry_run=False, created_at__gte=since, status__in=[SyncRun.PENDING, SyncRun.RUNNING])
        .order_by()
        .values_list("sync__destination_id")
        .annotate(n=Count("id"))
    )
    rows = []
    for destination in Destination.objects.order_by("name"):
        row = totals.get(destination.pk, {})
        planned = row.get("n_planned") or 0
        unapplied = row.get("n_unapplied") or 0
        delta = unapplied / planned if planned else 0.0
        rows.append(
            {
                "destination": destination,
                "runs": row.get("n_runs") or 0,
                "in_progress": in_progress.get(destination.pk, 0),
                "planned": planned,
                "applied": row.get("n_applied") or 0,
                "failed": row.get("n_failed") or 0,
                "skipped": row.get("n_skipped") or 0,
                "unapplied": unapplied,
                "delta": delta,
                "delta_percent": percent(delta),
            }
        )
    return rows


RUN_CSV_COLUMNS = [
    "run_id",
    "sync",
    "destination",
    "segment_version",
    "triggered_by",
    "created_at",
    "finished_at",
    "status",
    "planned",
    "applied",
    "failed",
    "skipped",
    *[f"skipped_{code}" for code, _label in domain.SKIP_REASONS],
    "unapplied",
    "delta",
]
RECORD_CSV_COLUMNS = [
    "record_id",
    "run_id",
    "profile_id",
    "operation",
    "status",
    "skip_reason",
    "attempts",
    "status_code",
    "applied_at",
    "error",
]


def _iso(value) -> str:
    return value.isoformat() if value else ""


def reconciliation_csv_rows(since):
    """One row per real run: the warehouse joins these to what the destination reports."""
    yield RUN_CSV_COLUMNS
    for run in reconciliation_runs(since).iterator(chunk_size=500):
        reasons = run.skipped_reasons or {}
        yield [
            run.pk,
            run.sync.slug,
            run.sync.destination.slug,
            run.segment_version.number if run.segment_version else "",
            run.triggered_by,
            _iso(run.created_at),
            _iso(run.finished_at),
            run.status,
            run.planned,
            run.applied,
            run.failed,
            run.skipped,
            *[reasons.get(code, 0) for code, _label in domain.SKIP_REASONS],
            run.unapplied,
            f"{run.reconciliation_delta:.4f}",
        ]


def record_csv_rows(run: SyncRun):
    """One row per record of a run; never the key or the payload (they are personal data)."""
    yield RECORD_CSV_COLUMNS
    rows = (
        SyncRecord.objects.filter(run=run)
        .order_by("id")
        .values_list(
            "id",
            "run_id",
            "profile_id",
            "operation",
            "status",
            "skip_reason",
            "attempts",
            "status_code",
            "applied_at",
            "error",
        )
    )
    for *values, applied_at, error in rows.iterator(chunk_size=2000):
        yield [*["" if value is None else value for value in values], _iso(applied_at), error]


# -- runbook ----------------------------------------------------------------------------------------


def _address(destination: Destination, connector) -> str:
    if destination.kind == Destination.CSV:
        return f"files under {connector.directory}"
    return connector.base_url or "(no address set)"


def sync_frequency(sync: Sync) -> str:
    return f"every {sync.schedule_minutes} minutes" if sync.schedule_minutes else "on demand"


def _trigger_cause(trigger: Trigger) -> str:
    if trigger.kind == Trigger.EVENT:
        cause = f"event {trigger.event_type}"
        if trigger.where:
            conditions = ", ".join(
                f"{condition.get('property')} {condition.get('op')} {json.dumps(condition.get('value'))}"
                if "value" in condition
                else f"{condition.get('property')} {condition.get('op')}"
                for condition in trigger.where
            )
            cause += f" where {conditions}"
        return cause
    verb = "enters" if trigger.kind == Trigger.SEGMENT_ENTRY else "leaves"
    return f"a person {verb} segment {trigger.segment.name if trigger.segment else '?'}"


def _caps(trigger: Trigger, channel: str) -> str:
    if not trigger.cap_window_hours:
        return "no frequency cap"
    return f"at most {trigger.cap_count} per person on the {channel} channel in {trigger.cap_window_hours} hours"


def _quiet_hours(trigger: Trigger) -> str:
    if trigger.quiet_start_hour is None or trigger.quiet_end_hour is None:
        return "none"
    return (
        f"{trigger.quiet_start_hour:02d}:00–{trigger.quiet_end_hour:02d}:00 in the person's time zone "
        f"(else {trigger.default_timezone}); sends wait until the quiet hours end"
    )


def _deletion(destination: Destination, connector) -> str:
    operations = set(destination.operations or [])
    if domain.DELETE in operations:
        return connector.deletion or "a delete operation with the person's key"
    if domain.REMOVE in operations:
        return (
            "removal only: the person is removed from the audience, but the destination keeps whatever it "
            "stored about them — delete it there by hand"
        )
    detail = f" ({connector.deletion})" if connector.deletion else ""
    return f"not supported — handle manually{detail}"


def runbook() -> list[dict]:
    """For every destination, from the live configuration: what is written where, how, by what, and
    what happens on a deletion request or a consent withdrawal."""
    entries = []
    destinations = Destination.objects.order_by("name").prefetch_related(
        Prefetch("syncs", queryset=Sync.objects.select_related("segment").order_by("name")),
        Prefetch("triggers", queryset=Trigger.objects.select_related("segment").order_by("name")),
    )
    for destination in destinations:
        connector = connector_for(destination)
        warnings = list(connector.check_configuration())
        try:
            domain.parse_contract(destination.fields)
        except domain.ContractViolation as error:
            warnings.append(f"the contract is invalid: {error}")
        fields = contract_rows(destination)
        purpose = destination.consent_purpose
        # Empty: the pages and the Markdown say so as a warning.
        consent = (
            f"consent purpose {PURPOSE_LABELS.get(purpose, purpose)} ({purpose}): {CONSENT_HANDLING}" if purpose else ""
        )
        if not destination.is_active:
            warnings.append("the destination is switched off: nothing is sent to it")
        entries.append(
            {
                "destination": destination,
                "kind": connector.label,
                "address": _address(destination, connector),
                "fields": fields,
                "idempotency_key": destination.idempotency_key,
                "operations": [OPERATION_LABELS.get(op, op) for op in destination.operations or []],
                "batch_size": connector.batch_size,
                "rate_limit": destination.rate_limit_per_second,
                "retry": (
                    f"{connector.retry_policy}. At most {destination.max_attempts} attempts per record, then parked "
                    f"as failed (replayable from the run page). In short: {RETRY_TAIL}"
                ),
                "syncs": [
                    {
                        "sync": sync,
                        "segment": sync.segment.name,
                        "mode": MODE_LABELS.get(sync.mode, sync.mode),
                        "frequency": sync_frequency(sync),
                        "active": sync.is_active,
                    }
                    for sync in destination.syncs.all()
                ],
                "triggers": [
                    {
                        "trigger": trigger,
                        "kind": trigger.get_kind_display(),
                        "cause": _trigger_cause(trigger),
                        "caps": _caps(trigger, connector.channel),
                        "quiet_hours": _quiet_hours(trigger),
                        "active": trigger.is_active,
                    }
                    for trigger in destination.triggers.all()
                ],
                "deletion": _deletion(destination, connector),
                "consent": consent,
                "warnings": warnings,
            }
        )
    return entries

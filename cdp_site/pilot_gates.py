"""Pilot gates: the go/no-go checklist, evaluated from the system's state, each gate with its evidence.

Reads (the gates, the settings, the latest sign-offs) and the two writes behind the gates page
(a sign-off, a settings change; both audited). Every gate costs a fixed number of queries whatever
the number of sources, destinations, runs or events: events and runs are aggregated in SQL, never
loaded.

The gates, in order (the README's "Pilot gates" section says the same):
1. owners: every active source, destination, sync and trigger has an owner with an active account
   (and there is at least one active source and destination);
2. contracts: every canonical event type received in the last 30 days has an active EventContract;
3. identity coverage: the latest identity metric snapshot, taken within the window, reaches the threshold;
4. canary activations: every active destination passed its last connection test and has delivered
   for real (a completed real sync run that applied something and failed nothing, or a sent trigger);
5. reconciliation: over the window, at least one completed real run, every completed real run within
   the maximum delta, no run failed and no record parked as failed;
6. suppression: every active destination that receives people (an active sync or trigger) names a
   consent purpose, and the newest suppression sign-off is a signature;
7. rollback: the newest rollback sign-off is a signature, and every active sync's destination allows
   removal or deletion, so an audience can be taken back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.db.models import Count, Exists, F, FloatField, Max, OuterRef, Q, Value
from django.db.models.functions import Cast, Greatest, NullIf
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from activations import domain as activations_domain
from activations.models import Destination, Sync, SyncRecord, SyncRun, Trigger, TriggerSend
from cdp_site.audit import audit_record
from cdp_site.pilot_models import PilotSettings, PilotSignoff
from consent.domain import PURPOSES
from identity.models import IdentityMetricSnapshot
from profiles.models import Event, EventContract, Source

CONTRACT_WINDOW_DAYS = 30
# Evidence lists stay readable: beyond this many offending runs the gate says how many more there are.
MAX_LISTED_RUNS = 20
GO, NO_GO = "go", "no-go"
PURPOSE_LABELS = dict(PURPOSES)
ROLLBACK_OPERATIONS = frozenset({activations_domain.REMOVE, activations_domain.DELETE})


@dataclass(frozen=True)
class Evidence:
    text: str
    url: str = ""
    is_problem: bool = False


@dataclass(frozen=True)
class Gate:
    key: str
    title: str
    passed: bool
    summary: str
    evidence: tuple[Evidence, ...]
    fix: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GateReport:
    evaluated_at: datetime
    settings: dict
    gates: tuple[Gate, ...]

    @property
    def passed(self) -> bool:
        return all(gate.passed for gate in self.gates)

    @property
    def verdict(self) -> str:
        return GO if self.passed else NO_GO

    @property
    def failed(self) -> list[Gate]:
        return [gate for gate in self.gates if not gate.passed]

    def as_dict(self) -> dict:
        return {
            "verdict": self.verdict,
            "passed": self.passed,
            "evaluated_at": self.evaluated_at.isoformat(),
            "settings": self.settings,
            "gates": [gate.as_dict() for gate in self.gates],
        }


def _url(name: str, *args) -> str:
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return ""


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "never"


def _percent(share: float | None) -> str:
    return f"{(share or 0.0) * 100:.1f}%"


# -- settings and sign-offs ---------------------------------------------------------------------


def pilot_settings() -> PilotSettings:
    """The agreed thresholds (the migration creates the row; an unsaved default stands in without it)."""
    return PilotSettings.objects.filter(pk=PilotSettings.SINGLETON_PK).first() or PilotSettings(
        pk=PilotSettings.SINGLETON_PK
    )


def settings_dict(settings: PilotSettings) -> dict:
    return {
        "identity_coverage_threshold": settings.identity_coverage_threshold,
        "max_reconciliation_delta": settings.max_reconciliation_delta,
        "window_hours": settings.window_hours,
        "updated_by": settings.updated_by,
        "updated_at": settings.updated_at.isoformat() if settings.updated_at else None,
    }


def latest_signoffs() -> dict[str, PilotSignoff | None]:
    """The newest sign-off per gate key: the one that counts."""
    return {
        gate: PilotSignoff.objects.filter(gate=gate).order_by("-signed_at", "-id").first()
        for gate, _label in PilotSignoff.GATES
    }


def signoff_history(*, limit: int = 20) -> list[PilotSignoff]:
    return list(PilotSignoff.objects.order_by("-signed_at", "-id")[:limit])


@transaction.atomic
def pilot_signoff_record(*, gate: str, decision: str, document_url: str, note: str, actor: str) -> PilotSignoff:
    """A new sign-off (or withdrawal) for a gate; the previous ones stay as history."""
    signoff = PilotSignoff.objects.create(
        gate=gate, decision=decision, document_url=document_url, note=note, signed_by=actor[:150]
    )
    audit_record(
        actor=actor,
        action=f"pilot.signoff.{decision}",
        target=signoff,
        summary=f"{signoff.get_decision_display()}: {signoff.get_gate_display().lower()}",
        gate=gate,
        has_document=bool(document_url),
    )
    return signoff


@transaction.atomic
def pilot_settings_update(
    *, identity_coverage_threshold: float, max_reconciliation_delta: float, window_hours: int, actor: str
) -> PilotSettings:
    settings = PilotSettings.objects.select_for_update().filter(pk=PilotSettings.SINGLETON_PK).first()
    settings = settings or PilotSettings(pk=PilotSettings.SINGLETON_PK)
    before = settings_dict(settings)
    settings.identity_coverage_threshold = identity_coverage_threshold
    settings.max_reconciliation_delta = max_reconciliation_delta
    settings.window_hours = window_hours
    settings.updated_by = actor[:150]
    settings.full_clean()
    settings.save()
    changed = {
        name: {"from": before[name], "to": value}
        for name, value in settings_dict(settings).items()
        if name not in ("updated_by", "updated_at") and before[name] != value
    }
    audit_record(
        actor=actor,
        action="pilot.settings",
        target=settings,
        summary=f"Pilot thresholds: {settings}",
        changed=changed,
    )
    return settings


# -- gate 1: owners -----------------------------------------------------------------------------

OWNED = (
    ("Source", Source, "profiles:source_detail"),
    ("Destination", Destination, "activations:destination_detail"),
    ("Sync", Sync, "activations:sync_detail"),
    ("Trigger", Trigger, "activations:trigger_detail"),
)


def gate_owners() -> Gate:
    evidence, counts, missing = [], {}, 0
    for label, model, url_name in OWNED:
        rows = list(model.objects.filter(is_active=True).select_related("owner").order_by("name"))
        counts[label] = len(rows)
        for row in rows:
            owner = row.owner
            where = f"{label} {row.name} ({row.slug})"
            if owner is None:
                problem = "no owner"
            elif not owner.is_active:
                problem = f"owner {owner.get_username()} has a deactivated account"
            else:
                evidence.append(Evidence(f"{where}: owner {owner.get_username()}", _url(url_name, row.slug)))
                continue
            missing += 1
            evidence.append(Evidence(f"{where}: {problem}", _url(url_name, row.slug), is_problem=True))
    empty = [
        Evidence(f"No active {label.lower()}: there is nothing to pilot yet", is_problem=True)
        for label in ("Source", "Destination")
        if not counts[label]
    ]
    evidence = empty + evidence
    passed = not missing and counts["Source"] > 0 and counts["Destination"] > 0
    summary = ", ".join(
        f"{counts[label]} active {label.lower()}{'s' if counts[label] != 1 else ''}" for label, *_ in OWNED
    ) + (f"; {missing} without an owner" if missing else "; every one has an owner")
    return Gate(
        key="owners",
        title="Owners assigned for sources and destinations",
        passed=passed,
        summary=summary,
        evidence=tuple(evidence),
        fix=(
            "Give each item an owner with an active account: sources, destinations, syncs and triggers take their "
            "creator as owner; change it in the admin (Sources, Destinations, Syncs, Triggers → Owner). Switch off "
            "what nobody will own."
        ),
    )


# -- gate 2: contracts --------------------------------------------------------------------------


def event_types_seen(*, since: datetime) -> list[dict]:
    """Canonical event types received since `since`: type, events, last arrival (one GROUP BY). By arrival,
    not occurrence: a backfill of last year's bookings loaded today is checked against today's contracts."""
    return list(
        Event.objects.filter(received_at__gte=since)
        .order_by()
        .values("type")
        .annotate(events=Count("id"), last=Max("received_at"))
        .order_by("type")
    )


def gate_contracts(*, now: datetime) -> Gate:
    seen = event_types_seen(since=now - timedelta(days=CONTRACT_WINDOW_DAYS))
    contracts = dict(EventContract.objects.values_list("event_type", "is_active"))
    evidence, uncovered = [], []
    for row in seen:
        kind, count = row["type"], row["events"]
        if contracts.get(kind):
            evidence.append(Evidence(f"{kind}: {count} event{'s' if count != 1 else ''}, contract active"))
            continue
        state = "contract switched off" if kind in contracts else "no contract"
        uncovered.append(kind)
        evidence.append(Evidence(f"{kind}: {count} event{'s' if count != 1 else ''}, {state}", is_problem=True))
    # Uncovered types first: they are what someone has to act on.
    evidence.sort(key=lambda item: not item.is_problem)
    if not seen:
        evidence.append(Evidence(f"No events in the last {CONTRACT_WINDOW_DAYS} days", is_problem=True))
        summary = f"no events in the last {CONTRACT_WINDOW_DAYS} days"
    else:
        summary = (
            f"{len(seen)} event type{'s' if len(seen) != 1 else ''} in use in the last {CONTRACT_WINDOW_DAYS} days"
        )
        summary += f", {len(uncovered)} without an active contract" if uncovered else ", all under an active contract"
    return Gate(
        key="contracts",
        title="Contracts defined for the event types in use",
        passed=bool(seen) and not uncovered,
        summary=summary,
        evidence=tuple(evidence),
        fix=(
            "Add or switch on an event contract for each type listed (admin → Event contracts: required and "
            "optional properties with their types); events that break it are quarantined and replayable. With no "
            "events at all, connect a source and send some first."
        ),
    )


# -- gate 3: identity coverage ------------------------------------------------------------------


def gate_identity_coverage(*, settings: PilotSettings, now: datetime) -> Gate:
    threshold = settings.identity_coverage_threshold
    snapshot = IdentityMetricSnapshot.objects.order_by("-captured_at", "-id").first()
    fix = (
        "Identity coverage is taken from the hourly identity metrics snapshot (the `identity_metrics_snapshot` "
        "schedule: keep the django-q2 cluster running, `python manage.py qcluster`). To raise it, ingest sources "
        "that carry verified emails, phones or member ids (the source audit shows which), and review pending "
        "merges; or agree a different threshold in the settings below."
    )
    metrics_url = _url("identity:metrics")
    if snapshot is None:
        return Gate(
            key="identity_coverage",
            title="Identity coverage above the agreed threshold",
            passed=False,
            summary="no identity metrics snapshot yet",
            evidence=(Evidence("No identity metrics snapshot has been taken", metrics_url, is_problem=True),),
            fix=fix,
        )
    coverage = (snapshot.figures or {}).get("coverage") or {}
    rate = float(coverage.get("rate") or 0.0)
    profiles = (snapshot.figures or {}).get("profiles")
    covered = coverage.get("covered")
    is_fresh = snapshot.captured_at >= now - timedelta(hours=settings.window_hours)
    evidence = [
        Evidence(
            f"Snapshot of {_when(snapshot.captured_at)}: {covered} of {profiles} active profiles hold a verified "
            f"canonical identifier ({_percent(rate)}); agreed threshold {_percent(threshold)}",
            metrics_url,
            is_problem=rate < threshold,
        )
    ]
    if not is_fresh:
        evidence.append(
            Evidence(
                f"The snapshot is older than {settings.window_hours} hours: the snapshot schedule is not running",
                is_problem=True,
            )
        )
    return Gate(
        key="identity_coverage",
        title="Identity coverage above the agreed threshold",
        passed=rate >= threshold and is_fresh,
        summary=f"{_percent(rate)} against {_percent(threshold)}" + ("" if is_fresh else " (snapshot out of date)"),
        evidence=tuple(evidence),
        fix=fix,
    )


# -- gate 4: canary activations -----------------------------------------------------------------


def gate_canary_activations() -> Gate:
    destinations = list(Destination.objects.filter(is_active=True).order_by("name"))
    runs = {
        row["sync__destination_id"]: row
        for row in SyncRun.objects.filter(
            is_dry_run=False, status=SyncRun.COMPLETED, applied__gt=0, failed=0, sync__destination__is_active=True
        )
        .order_by()
        .values("sync__destination_id")
        .annotate(n=Count("id"), last_id=Max("id"), last_at=Max("finished_at"), applied=Max("applied"))
    }
    sends = {
        row["trigger__destination_id"]: row
        for row in TriggerSend.objects.filter(status=TriggerSend.SENT, trigger__destination__is_active=True)
        .order_by()
        .values("trigger__destination_id")
        .annotate(n=Count("id"), last_at=Max("sent_at"))
    }
    evidence, failing = [], []
    for destination in destinations:
        url = _url("activations:destination_detail", destination.slug)
        name = f"{destination.name} ({destination.slug})"
        if destination.last_test_ok:
            evidence.append(Evidence(f"{name}: connection test passed {_when(destination.last_tested_at)}", url))
        else:
            failing.append(destination.slug)
            detail = (
                "never tested"
                if destination.last_tested_at is None
                else f"last connection test failed {_when(destination.last_tested_at)}: {destination.last_test_message}"
            )
            evidence.append(Evidence(f"{name}: {detail}", url, is_problem=True))
        run, send = runs.get(destination.pk), sends.get(destination.pk)
        if run:
            evidence.append(
                Evidence(
                    f"{name}: {run['n']} clean real sync run{'s' if run['n'] != 1 else ''} "
                    f"(latest #{run['last_id']}, finished {_when(run['last_at'])})",
                    _url("activations:run_detail", run["last_id"]),
                )
            )
        if send:
            evidence.append(
                Evidence(
                    f"{name}: {send['n']} trigger message{'s' if send['n'] != 1 else ''} delivered "
                    f"(latest {_when(send['last_at'])})",
                    url,
                )
            )
        if not run and not send:
            if destination.slug not in failing:
                failing.append(destination.slug)
            evidence.append(
                Evidence(
                    f"{name}: no real delivery yet (no completed real sync run that applied records without "
                    "failures, no delivered trigger message)",
                    url,
                    is_problem=True,
                )
            )
    if not destinations:
        evidence.append(Evidence("No active destination", is_problem=True))
    summary = (
        "no active destination"
        if not destinations
        else f"{len(destinations) - len(failing)} of {len(destinations)} active destinations proven"
    )
    return Gate(
        key="canary_activations",
        title="Canary activations succeeded",
        passed=bool(destinations) and not failing,
        summary=summary,
        evidence=tuple(evidence),
        fix=(
            "For each destination listed: press Test connection on its page, then run a sync to it for real with a "
            "small canary segment (a dry run first shows what will be sent) until a run completes with records "
            "applied and none failed, or let a trigger deliver a message."
        ),
    )


# -- gate 5: reconciliation ---------------------------------------------------------------------


def _delta_expression():
    unapplied = Cast(Greatest(F("planned") - F("applied"), Value(0)), FloatField())
    return unapplied / Cast(NullIf(F("planned"), Value(0)), FloatField())


def gate_reconciliation(*, settings: PilotSettings, now: datetime) -> Gate:
    since = now - timedelta(hours=settings.window_hours)
    limit = settings.max_reconciliation_delta
    real_runs = SyncRun.objects.filter(is_dry_run=False, created_at__gte=since).annotate(delta=_delta_expression())
    completed = Q(status=SyncRun.COMPLETED)
    over = completed & Q(delta__gt=limit)
    per_destination = {
        row["sync__destination_id"]: row
        for row in real_runs.order_by()
        .values("sync__destination_id")
        .annotate(
            completed=Count("id", filter=completed),
            failed_runs=Count("id", filter=Q(status=SyncRun.FAILED)),
            over=Count("id", filter=over),
            worst=Max("delta", filter=completed),
        )
    }
    parked = dict(
        SyncRecord.objects.filter(status=SyncRecord.FAILED, run__is_dry_run=False, created_at__gte=since)
        .order_by()
        .values_list("run__sync__destination_id")
        .annotate(n=Count("id"))
    )
    offending = list(
        real_runs.filter(over | Q(status=SyncRun.FAILED))
        .select_related("sync")
        .order_by("-created_at", "-id")[: MAX_LISTED_RUNS + 1]
    )
    shown = {row for row in per_destination} | set(parked)
    destinations = Destination.objects.filter(Q(is_active=True) | Q(pk__in=shown)).order_by("name")
    evidence, total_completed, problems = [], 0, 0
    for destination in destinations:
        row = per_destination.get(destination.pk, {})
        done, failed_runs, over_count = row.get("completed", 0), row.get("failed_runs", 0), row.get("over", 0)
        records = parked.get(destination.pk, 0)
        total_completed += done
        is_problem = bool(failed_runs or over_count or records)
        problems += is_problem
        text = f"{destination.name} ({destination.slug}): {done} completed real run{'s' if done != 1 else ''}"
        if done:
            text += f", worst delta {_percent(row.get('worst'))} (max {_percent(limit)})"
        if over_count:
            text += f", {over_count} over the maximum"
        if failed_runs:
            text += f", {failed_runs} failed run{'s' if failed_runs != 1 else ''}"
        text += f", {records} record{'s' if records != 1 else ''} parked as failed"
        evidence.append(Evidence(text, _url("activations:reconciliation"), is_problem=is_problem))
    for run in offending[:MAX_LISTED_RUNS]:
        reason = "failed" if run.status == SyncRun.FAILED else f"delta {_percent(run.delta)}"
        evidence.append(
            Evidence(
                f"Run #{run.pk} of sync {run.sync.slug} ({_when(run.created_at)}): {reason}, "
                f"{run.applied} of {run.planned} applied",
                _url("activations:run_detail", run.pk),
                is_problem=True,
            )
        )
    if len(offending) > MAX_LISTED_RUNS:
        evidence.append(Evidence("… and more runs: see the Reconciliation page", _url("activations:reconciliation")))
    if not total_completed:
        evidence.insert(
            0, Evidence(f"No completed real sync run in the last {settings.window_hours} hours", is_problem=True)
        )
    passed = total_completed > 0 and not problems
    summary = (
        f"{total_completed} completed real run{'s' if total_completed != 1 else ''} in the last "
        f"{settings.window_hours} hours"
    )
    if problems:
        summary += f"; {problems} destination{'s' if problems != 1 else ''} not clean"
    elif total_completed:
        summary += "; all clean"
    return Gate(
        key="reconciliation",
        title=f"Reconciliation clean for the last {settings.window_hours} hours",
        passed=passed,
        summary=summary,
        evidence=tuple(evidence),
        fix=(
            "Open each run listed: read the failed records' answers, fix the cause (contract, credentials, rate "
            "limit) and press Replay failed records, then let the next runs complete cleanly. The gate looks at "
            "the window only, so it turns green once a clean window has passed; at least one real run must "
            "happen in it."
        ),
    )


# -- gates 6 and 7: suppression and rollback documented ----------------------------------------


def _signoff_evidence(signoff: PilotSignoff | None, label: str) -> tuple[bool, Evidence]:
    if signoff is None:
        return False, Evidence(f"No {label} sign-off recorded", is_problem=True)
    where = f" ({signoff.document_url})" if signoff.document_url else ""
    note = f": {signoff.note}" if signoff.note else ""
    text = f"{signoff.get_decision_display()} by {signoff.signed_by} on {_when(signoff.signed_at)}{where}{note}"
    return signoff.is_signed, Evidence(text, signoff.document_url, is_problem=not signoff.is_signed)


def gate_suppression(*, signoff: PilotSignoff | None) -> Gate:
    receiving = list(
        Destination.objects.filter(is_active=True)
        .annotate(
            has_sync=Exists(Sync.objects.filter(destination=OuterRef("pk"), is_active=True)),
            has_trigger=Exists(Trigger.objects.filter(destination=OuterRef("pk"), is_active=True)),
        )
        .filter(Q(has_sync=True) | Q(has_trigger=True))
        .order_by("name")
    )
    evidence, missing = [], 0
    for destination in receiving:
        url = _url("activations:destination_detail", destination.slug)
        name = f"{destination.name} ({destination.slug})"
        purpose = destination.consent_purpose
        if purpose:
            label = PURPOSE_LABELS.get(purpose, purpose)
            evidence.append(Evidence(f"{name}: consent purpose {label}: a withdrawal removes the person at once", url))
        else:
            missing += 1
            evidence.append(
                Evidence(f"{name}: no consent purpose, so a withdrawal suppresses nothing there", url, is_problem=True)
            )
    if not receiving:
        evidence.append(Evidence("No active destination receives people yet (no active sync or trigger)"))
    signed, signoff_line = _signoff_evidence(signoff, "suppression")
    evidence.append(signoff_line)
    summary = f"{len(receiving) - missing} of {len(receiving)} receiving destinations suppress on withdrawal; "
    summary += "signed off" if signed else "not signed off"
    return Gate(
        key="suppression",
        title="Suppression documented",
        passed=signed and not missing,
        summary=summary,
        evidence=tuple(evidence),
        fix=(
            "Give every destination listed the consent purpose it needs (its edit page). Then have a privacy "
            "officer or integration engineer review the suppression procedure (consent withdrawal, suppression "
            "segments, the Consent propagation page) and record a sign-off below with the document's address."
        ),
    )


def gate_rollback(*, signoff: PilotSignoff | None) -> Gate:
    syncs = list(Sync.objects.filter(is_active=True).select_related("destination").order_by("name"))
    evidence, stuck = [], 0
    for sync in syncs:
        operations = set(sync.destination.operations or [])
        url = _url("activations:sync_detail", sync.slug)
        name = f"Sync {sync.name} ({sync.slug}) → {sync.destination.name}"
        if activations_domain.REMOVE in operations:
            evidence.append(Evidence(f"{name}: people can be removed from the audience", url))
        elif activations_domain.DELETE in operations:
            evidence.append(Evidence(f"{name}: no removal; people can be deleted from the destination", url))
        else:
            stuck += 1
            allowed = ", ".join(sorted(operations)) or "nothing"
            evidence.append(
                Evidence(
                    f"{name}: the destination allows only {allowed}, so people sent cannot be taken back",
                    url,
                    is_problem=True,
                )
            )
    if not syncs:
        evidence.append(Evidence("No active sync"))
    signed, signoff_line = _signoff_evidence(signoff, "rollback")
    evidence.append(signoff_line)
    summary = f"{len(syncs) - stuck} of {len(syncs)} active syncs can be rolled back; "
    summary += "signed off" if signed else "not signed off"
    return Gate(
        key="rollback",
        title="Rollback documented",
        passed=signed and not stuck,
        summary=summary,
        evidence=tuple(evidence),
        fix=(
            "Allow the remove (or delete) operation in the contract of each destination listed, or switch those "
            "syncs off for the pilot. The handoff pack's runbook.md lists the rollback steps per destination: "
            "review them and record a rollback sign-off below with the document's address."
        ),
    )


# -- the checklist ------------------------------------------------------------------------------


def pilot_gates_evaluate(*, now: datetime | None = None) -> GateReport:
    """Every gate, evaluated now. Overall Go only when every gate passes."""
    now = now or timezone.now()
    settings = pilot_settings()
    signoffs = latest_signoffs()
    gates = (
        gate_owners(),
        gate_contracts(now=now),
        gate_identity_coverage(settings=settings, now=now),
        gate_canary_activations(),
        gate_reconciliation(settings=settings, now=now),
        gate_suppression(signoff=signoffs[PilotSignoff.SUPPRESSION]),
        gate_rollback(signoff=signoffs[PilotSignoff.ROLLBACK]),
    )
    return GateReport(evaluated_at=now, settings=settings_dict(settings), gates=gates)

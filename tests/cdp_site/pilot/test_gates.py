"""Each pilot gate fails with the evidence that says why, and passes once the state is fixed."""

from datetime import UTC, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from activations.destinations import destination_test
from activations.local_destination import LocalDestination, Reply
from activations.models import Destination, Sync, SyncRecord, SyncRun, Trigger
from activations.triggers import trigger_save
from cdp_site.models import AuditEntry, PilotSettings, PilotSignoff
from cdp_site.pilot_gates import (
    GO,
    NO_GO,
    gate_canary_activations,
    gate_contracts,
    gate_identity_coverage,
    gate_owners,
    gate_reconciliation,
    gate_rollback,
    gate_suppression,
    latest_signoffs,
    pilot_gates_evaluate,
    pilot_settings,
    pilot_settings_update,
)
from identity.metrics import identity_metrics_snapshot
from identity.models import IdentityMetricSnapshot
from profiles.models import Event, EventContract
from profiles.sources import source_create
from tests.cdp_site.pilot.conftest import run_sync, sign

pytestmark = pytest.mark.django_db

GATE_KEYS = [
    "owners",
    "contracts",
    "identity_coverage",
    "canary_activations",
    "reconciliation",
    "suppression",
    "rollback",
]


def problems(gate) -> list[str]:
    return [item.text for item in gate.evidence if item.is_problem]


def reconciliation_gate():
    return gate_reconciliation(settings=pilot_settings(), now=timezone.now())


def suppression_gate():
    return gate_suppression(signoff=latest_signoffs()[PilotSignoff.SUPPRESSION])


def rollback_gate():
    return gate_rollback(signoff=latest_signoffs()[PilotSignoff.ROLLBACK])


# -- the whole checklist ------------------------------------------------------------------------------


def test_an_empty_system_is_no_go_with_every_gate_failing():
    report = pilot_gates_evaluate()
    assert [gate.key for gate in report.gates] == GATE_KEYS
    assert (report.verdict, report.passed) == (NO_GO, False)
    assert [gate.passed for gate in report.gates] == [False] * 7
    assert all(gate.fix for gate in report.gates)
    assert problems(report.gates[0])[:2] == [
        "No active source: there is nothing to pilot yet",
        "No active destination: there is nothing to pilot yet",
    ]


def test_a_ready_pilot_is_go_and_one_broken_gate_makes_it_no_go(ready_pilot):
    report = pilot_gates_evaluate()
    assert {gate.key: gate.passed for gate in report.gates} == dict.fromkeys(GATE_KEYS, True), [
        (gate.key, problems(gate)) for gate in report.failed
    ]
    assert (report.verdict, report.passed) == (GO, True)
    data = report.as_dict()
    assert data["verdict"] == "go" and [gate["key"] for gate in data["gates"]] == GATE_KEYS

    Sync.objects.filter(pk=ready_pilot.sync.pk).update(owner=None)
    report = pilot_gates_evaluate()
    assert report.verdict == NO_GO
    assert [gate.key for gate in report.failed] == ["owners"]
    assert problems(report.failed[0]) == ["Sync Sync (gold-hook): no owner"]


def test_the_checklist_costs_the_same_queries_whatever_the_number_of_rows(ready_pilot, webhook_destination, make_sync):
    with CaptureQueriesContext(connection) as small:
        pilot_gates_evaluate()
    for number in range(4):
        source, _ = source_create(name=f"Extra {number}", kind="tracking", owner=ready_pilot.owner)
        destination = webhook_destination("http://127.0.0.1:9/x", owner=ready_pilot.owner, last_test_ok=True)
        sync = make_sync(ready_pilot.segment, destination, owner=ready_pilot.owner)
        SyncRun.objects.create(
            sync=sync, triggered_by="test", created_at=timezone.now(), status=SyncRun.COMPLETED, planned=3, applied=3
        )
        trigger_save(
            name=f"T{number}",
            slug=f"t-{number}",
            kind=Trigger.EVENT,
            destination=destination,
            event_type="order.completed",
            template={"type": "thanks", "to": "{email}"},
        )
    with CaptureQueriesContext(connection) as large:
        report = pilot_gates_evaluate()
    assert len(report.gates[0].evidence) > 5
    assert len(large.captured_queries) == len(small.captured_queries)


# -- 1. owners ------------------------------------------------------------------------------------------


def test_owners_gate_lists_everything_without_an_owner_then_passes(
    make_user, canonical_source, audience, webhook_destination, make_sync
):
    destination = webhook_destination("http://127.0.0.1:9/hook", slug="hook", name="Hook")
    sync = make_sync(audience(slug="gold"), destination, slug="gold-hook", name="Gold")
    trigger = trigger_save(
        name="Thanks",
        slug="thanks",
        kind=Trigger.EVENT,
        destination=destination,
        event_type="order.completed",
        template={"type": "thanks", "to": "{email}"},
    )
    switched_off, _ = source_create(name="Old shop", kind="shopify", is_active=False)
    gate = gate_owners()
    assert not gate.passed
    assert problems(gate) == [
        "Source Canonical test source (canonical-test-source): no owner",
        "Destination Hook (hook): no owner",
        "Sync Gold (gold-hook): no owner",
        "Trigger Thanks (thanks): no owner",
    ]
    assert "4 without an owner" in gate.summary
    assert gate.evidence[0].url == "/sources/canonical-test-source/"
    assert switched_off.slug not in " ".join(item.text for item in gate.evidence)

    owner = make_user("integration_engineer", username="olive")
    departed = make_user("marketer", username="dora", is_active=False)
    for model, pk in ((Destination, destination.pk), (Sync, sync.pk), (Trigger, trigger.pk)):
        model.objects.filter(pk=pk).update(owner=owner)
    canonical_source.owner = departed
    canonical_source.save(update_fields=["owner"])
    gate = gate_owners()
    assert problems(gate) == [
        "Source Canonical test source (canonical-test-source): owner dora has a deactivated account"
    ]

    canonical_source.owner = owner
    canonical_source.save(update_fields=["owner"])
    gate = gate_owners()
    assert gate.passed and not problems(gate)
    assert "Destination Hook (hook): owner olive" in [item.text for item in gate.evidence]


# -- 2. contracts ---------------------------------------------------------------------------------------


def test_contracts_gate_counts_types_in_use_in_sql_and_names_the_uncovered_ones(person):
    order = {"order_id": "o-1", "total": 20, "currency": "GBP"}
    person(email="ana@example.com", event_type="order.completed", properties=order)
    person(email="ben@example.com", event_type="order.completed", properties={**order, "order_id": "o-2"})
    person(email="cy@example.com", event_type="page.viewed")
    old = person(email="dee@example.com", event_type="booking.created", properties={"booking_id": "b-1"})
    Event.objects.filter(raw_event=old).update(received_at=timezone.now() - timedelta(days=31))
    assert gate_contracts(now=timezone.now()).passed

    EventContract.objects.filter(event_type="order.completed").delete()
    EventContract.objects.filter(event_type="page.viewed").update(is_active=False)
    gate = gate_contracts(now=timezone.now())
    assert not gate.passed
    assert problems(gate) == ["order.completed: 2 events, no contract", "page.viewed: 1 event, contract switched off"]
    assert gate.summary == "2 event types in use in the last 30 days, 2 without an active contract"
    assert "booking.created" not in " ".join(item.text for item in gate.evidence)  # outside the window

    EventContract.objects.create(
        event_type="order.completed", required={"order_id": "string", "total": "number", "currency": "string"}
    )
    EventContract.objects.filter(event_type="page.viewed").update(is_active=True)
    gate = gate_contracts(now=timezone.now())
    assert gate.passed
    assert [item.text for item in gate.evidence] == [
        "order.completed: 2 events, contract active",
        "page.viewed: 1 event, contract active",
    ]


def test_contracts_gate_fails_when_nothing_was_received():
    gate = gate_contracts(now=timezone.now())
    assert not gate.passed and problems(gate) == ["No events in the last 30 days"]


# -- 3. identity coverage -------------------------------------------------------------------------------


def test_identity_coverage_gate_reads_the_latest_snapshot_against_the_agreed_threshold(person):
    now = timezone.now()
    gate = gate_identity_coverage(settings=pilot_settings(), now=now)
    assert not gate.passed and gate.summary == "no identity metrics snapshot yet"
    assert problems(gate) == ["No identity metrics snapshot has been taken"]
    assert "identity_metrics_snapshot" in gate.fix and "qcluster" in gate.fix

    person(email="ana@example.com", verified=True)
    person(email="ben@example.com", verified=False)
    person(email="cy@example.com", verified=False)
    identity_metrics_snapshot()
    gate = gate_identity_coverage(settings=pilot_settings(), now=timezone.now())
    assert not gate.passed
    assert gate.summary == "33.3% against 60.0%"
    assert "1 of 3 active profiles hold a verified canonical identifier (33.3%)" in problems(gate)[0]

    person(email="ben@example.com", verified=True)
    identity_metrics_snapshot()
    gate = gate_identity_coverage(settings=pilot_settings(), now=timezone.now())
    assert gate.passed and gate.summary == "66.7% against 60.0%"

    # An old snapshot does not count: the schedule has stopped.
    IdentityMetricSnapshot.objects.update(captured_at=timezone.now() - timedelta(hours=49))
    gate = gate_identity_coverage(settings=pilot_settings(), now=timezone.now())
    assert not gate.passed
    assert problems(gate) == ["The snapshot is older than 48 hours: the snapshot schedule is not running"]

    # A threshold the team agreed higher fails a fresh snapshot.
    identity_metrics_snapshot()
    settings = pilot_settings_update(
        identity_coverage_threshold=0.7, max_reconciliation_delta=0.02, window_hours=48, actor="user:ian"
    )
    assert not gate_identity_coverage(settings=settings, now=timezone.now()).passed


# -- 4. canary activations ------------------------------------------------------------------------------


def test_canary_gate_needs_a_passed_test_and_a_real_delivery_per_destination(
    ingest, audience, webhook_destination, make_sync, server
):
    gate = gate_canary_activations()
    assert not gate.passed and problems(gate) == ["No active destination"]

    ingest(email="ana@example.com", traits={"plan": "gold"}, consent={"email_marketing": True})
    destination = webhook_destination(server.url, slug="hook", name="Hook")
    sync = make_sync(audience(slug="gold"), destination, slug="gold-hook")
    gate = gate_canary_activations()
    assert problems(gate) == [
        "Hook (hook): never tested",
        "Hook (hook): no real delivery yet (no completed real sync run that applied records without failures, "
        "no delivered trigger message)",
    ]

    with LocalDestination(lambda received: Reply(status=500)) as broken:
        Destination.objects.filter(pk=destination.pk).update(base_url=broken.url)
        destination.refresh_from_db()
        destination_test(destination, actor="test")
    assert problems(gate_canary_activations())[0].startswith("Hook (hook): last connection test failed")

    Destination.objects.filter(pk=destination.pk).update(base_url=server.url)
    destination.refresh_from_db()
    assert destination_test(destination, actor="test")[0]
    dry = run_sync(sync, dry_run=True)
    assert dry.status == "completed" and dry.planned == 1
    gate = gate_canary_activations()
    assert not gate.passed and len(problems(gate)) == 1  # a dry run proves nothing

    run = run_sync(sync)
    assert (run.applied, run.failed) == (1, 0)
    gate = gate_canary_activations()
    assert gate.passed, problems(gate)
    assert gate.summary == "1 of 1 active destinations proven"
    texts = [item.text for item in gate.evidence]
    assert texts[0].startswith("Hook (hook): connection test passed")
    assert texts[1].startswith(f"Hook (hook): 1 clean real sync run (latest #{run.pk}")
    assert gate.evidence[1].url == f"/sync-runs/{run.pk}/"
    assert len(server.accepted()) >= 2  # the test request and the real send reached the local server


def test_canary_gate_accepts_a_delivered_trigger_message(
    ingest_live, webhook_destination, server, django_capture_on_commit_callbacks
):
    destination = webhook_destination(server.url, slug="hook", name="Hook")
    assert destination_test(destination, actor="test")[0]
    trigger_save(
        name="Thanks",
        slug="thanks",
        kind=Trigger.EVENT,
        destination=destination,
        event_type="order.completed",
        template={"type": "order.thanks", "to": "{email}"},
        cap_window_hours=0,
    )
    assert not gate_canary_activations().passed
    ingest_live(
        email="ana@example.com",
        consent={"email_marketing": True},
        event_type="order.completed",
        properties={"order_id": "o-1", "total": 80, "currency": "EUR"},
    )
    gate = gate_canary_activations()
    assert gate.passed, problems(gate)
    assert "Hook (hook): 1 trigger message delivered" in " ".join(item.text for item in gate.evidence)


# -- 5. reconciliation ----------------------------------------------------------------------------------


def test_reconciliation_gate_over_the_window(ingest, audience, webhook_destination, make_sync):
    gate = reconciliation_gate()
    assert not gate.passed and problems(gate)[0] == "No completed real sync run in the last 48 hours"

    for name in ("ana", "ben"):
        ingest(email=f"{name}@example.com", traits={"plan": "gold"}, consent={"email_marketing": True})
    refuse_ben = {"on": True}

    def answer(received):
        is_ben = b"ben@example.com" in received.body
        return Reply(status=400, body={"error": "rejected"}) if is_ben and refuse_ben["on"] else Reply()

    with LocalDestination(answer) as server:
        destination = webhook_destination(server.url, slug="hook", name="Hook", max_attempts=1)
        sync = make_sync(audience(slug="gold"), destination, slug="gold-hook")
        bad = run_sync(sync)
        assert (bad.status, bad.planned, bad.applied, bad.failed) == ("completed", 2, 1, 1)
        gate = reconciliation_gate()
        assert not gate.passed
        assert problems(gate) == [
            "Hook (hook): 1 completed real run, worst delta 50.0% (max 2.0%), 1 over the maximum, "
            "1 record parked as failed",
            f"Run #{bad.pk} of sync gold-hook ({bad.created_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC): "
            "delta 50.0%, 1 of 2 applied",
        ]
        assert gate.evidence[1].url == f"/sync-runs/{bad.pk}/"

        # A team that accepts more unapplied operations still has a record parked as failed.
        pilot_settings_update(
            identity_coverage_threshold=0.6, max_reconciliation_delta=0.5, window_hours=48, actor="user:ian"
        )
        gate = reconciliation_gate()
        assert problems(gate) == [
            "Hook (hook): 1 completed real run, worst delta 50.0% (max 50.0%), 1 record parked as failed"
        ]

        # The receiver is fixed and the next run sends Ben; once the bad run is out of the window, clean.
        refuse_ben["on"] = False
        good = run_sync(sync)
        assert (good.planned, good.applied, good.failed) == (1, 1, 0)
        earlier = timezone.now() - timedelta(hours=49)
        SyncRun.objects.filter(pk=bad.pk).update(created_at=earlier)
        SyncRecord.objects.filter(run=bad).update(created_at=earlier)
    gate = reconciliation_gate()
    assert gate.passed, problems(gate)
    assert [item.text for item in gate.evidence] == [
        "Hook (hook): 1 completed real run, worst delta 0.0% (max 50.0%), 0 records parked as failed"
    ]
    assert gate.summary == "1 completed real run in the last 48 hours; all clean"


def test_a_failed_run_in_the_window_fails_reconciliation(ready_pilot):
    assert reconciliation_gate().passed
    failed = SyncRun.objects.create(
        sync=ready_pilot.sync, triggered_by="test", created_at=timezone.now(), status=SyncRun.FAILED, error="boom"
    )
    gate = reconciliation_gate()
    assert not gate.passed
    assert f"Run #{failed.pk} of sync gold-hook" in problems(gate)[1]
    assert "1 failed run" in problems(gate)[0]


# -- 6. suppression -------------------------------------------------------------------------------------


def test_suppression_gate_needs_purposes_where_people_are_sent_and_a_current_signoff(
    audience, webhook_destination, make_sync
):
    idle = webhook_destination("http://127.0.0.1:9/idle", slug="idle", name="Idle", consent_purpose="")
    destination = webhook_destination("http://127.0.0.1:9/hook", slug="hook", name="Hook", consent_purpose="")
    make_sync(audience(slug="gold"), destination, slug="gold-hook")
    gate = suppression_gate()
    assert not gate.passed
    assert problems(gate) == [
        "Hook (hook): no consent purpose, so a withdrawal suppresses nothing there",
        "No suppression sign-off recorded",
    ]
    assert idle.slug not in " ".join(item.text for item in gate.evidence)  # it receives nobody

    Destination.objects.filter(pk=destination.pk).update(consent_purpose="email_marketing")
    assert problems(suppression_gate()) == ["No suppression sign-off recorded"]

    signoff = sign(PilotSignoff.SUPPRESSION, actor="user:pia")
    gate = suppression_gate()
    assert gate.passed
    assert gate.evidence[-1].text.startswith("Signed off by user:pia on ")
    assert gate.evidence[-1].url == "https://wiki.example.org/suppression"
    assert AuditEntry.objects.filter(action="pilot.signoff.signed", target_id=str(signoff.pk)).count() == 1

    # The newest sign-off counts: a withdrawal fails the gate again, the history stays.
    sign(PilotSignoff.SUPPRESSION, decision=PilotSignoff.WITHDRAWN, actor="user:ian")
    gate = suppression_gate()
    assert not gate.passed
    assert problems(gate)[0].startswith("Withdrawn (no longer valid) by user:ian")
    assert PilotSignoff.objects.filter(gate=PilotSignoff.SUPPRESSION).count() == 2


# -- 7. rollback ----------------------------------------------------------------------------------------


def test_rollback_gate_needs_removable_audiences_and_a_signoff(audience, webhook_destination, make_sync):
    destination = webhook_destination("http://127.0.0.1:9/hook", slug="hook", name="Hook", operations=["upsert"])
    make_sync(audience(slug="gold"), destination, slug="gold-hook", name="Gold")
    sign(PilotSignoff.SUPPRESSION)  # the other gate's sign-off does not count here
    gate = rollback_gate()
    assert not gate.passed
    assert problems(gate) == [
        "Sync Gold (gold-hook) → Hook: the destination allows only upsert, so people sent cannot be taken back",
        "No rollback sign-off recorded",
    ]
    Destination.objects.filter(pk=destination.pk).update(operations=["upsert", "delete"])
    sign(PilotSignoff.ROLLBACK)
    gate = rollback_gate()
    assert gate.passed
    assert (
        gate.evidence[0].text == "Sync Gold (gold-hook) → Hook: no removal; people can be deleted from the destination"
    )


# -- settings and sign-offs -----------------------------------------------------------------------------


def test_settings_are_one_row_and_changes_are_audited():
    settings = pilot_settings()
    assert (settings.pk, settings.identity_coverage_threshold, settings.max_reconciliation_delta) == (1, 0.6, 0.02)
    assert settings.window_hours == 48
    pilot_settings_update(
        identity_coverage_threshold=0.75, max_reconciliation_delta=0.01, window_hours=24, actor="user:ian"
    )
    assert PilotSettings.objects.count() == 1
    stored = PilotSettings.objects.get()
    assert (stored.identity_coverage_threshold, stored.window_hours, stored.updated_by) == (0.75, 24, "user:ian")
    entry = AuditEntry.objects.get(action="pilot.settings")
    assert entry.actor == "user:ian"
    assert entry.detail["changed"]["window_hours"] == {"from": 48, "to": 24}
    assert reconciliation_gate().title == "Reconciliation clean for the last 24 hours"


def test_signoffs_are_append_only():
    signoff = sign(PilotSignoff.ROLLBACK)
    with pytest.raises(ValueError, match="append-only"):
        signoff.save()
    with pytest.raises(ValueError, match="append-only"):
        signoff.delete()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the database guard is PostgreSQL's")
def test_postgresql_refuses_changing_or_deleting_a_signoff():
    from django.db import IntegrityError, InternalError, ProgrammingError, transaction

    signoff = sign(PilotSignoff.ROLLBACK)
    for attempt in (
        lambda: PilotSignoff.objects.filter(pk=signoff.pk).update(note="changed"),
        lambda: PilotSignoff.objects.filter(pk=signoff.pk).delete(),
    ):
        with pytest.raises((ProgrammingError, InternalError, IntegrityError), match="append-only"):
            with transaction.atomic():
                attempt()
    assert PilotSignoff.objects.get(pk=signoff.pk).note == ""

"""A withdrawal reaches every destination that needs the purpose at once, with proof per destination,
from the staff page, the REST API and the ingestion pipeline; failures are retried by the sweeper."""

import base64
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from activations.local_destination import LocalDestination, Reply
from activations.models import SuppressionApplied, SyncRun, SyncState, Trigger, TriggerSend
from activations.triggers import trigger_save
from consent import propagation
from consent.models import ConsentRecord
from consent.propagation import (
    CLAIM,
    MAX_ROUNDS,
    after_pipeline_consent,
    propagate_withdrawal,
    propagation_summary,
    suppressions_retry_due,
    withdrawals_sweep,
)
from consent.recording import API, STAFF, consent_record
from profiles.models import RawEvent
from profiles.sources import source_create
from tests.activations import conftest as activations_fixtures
from tests.activations.conftest import bodies
from tests.consent_propagation import run_sync, synced

pytestmark = pytest.mark.django_db

# Fixtures of the activations suite: people ingested through the real pipeline, audiences, destinations.
audience = activations_fixtures.audience
ingest = activations_fixtures.ingest
ingest_live = activations_fixtures.ingest_live
make_sync = activations_fixtures.make_sync
webhook_destination = activations_fixtures.webhook_destination


@pytest.fixture
def capture(django_capture_on_commit_callbacks):
    """Run on-commit callbacks (tasks in q2's sync mode included), as after a real commit."""
    return django_capture_on_commit_callbacks


def order_trigger(destination):
    return trigger_save(
        name="Big order",
        slug=f"big-order-{destination.pk}",
        kind=Trigger.EVENT,
        destination=destination,
        event_type="order.completed",
        template={"type": "order.thanks", "to": "{email}"},
        cap_window_hours=0,
    )


def assert_suppressed_everywhere(server, sync, person, other, *, record, ingest_live, sent_before):
    """The removal reached the destination before any scheduled run, is proven by a row with its
    latency, and nothing afterwards sends to the person."""
    assert [body["type"] for body in bodies(server)[sent_before:]] == ["profile.removed"]
    assert bodies(server)[-1]["data"] == {"key": "ana@example.com"}
    assert SyncRun.objects.filter(sync=sync).count() == 1  # no run was needed for it
    [row] = SuppressionApplied.objects.filter(consent_record=record)
    assert (row.status, row.destination_id, row.sync_id, row.operation) == (
        "applied",
        sync.destination_id,
        sync.pk,
        "remove",
    )
    assert (row.profile_id, row.purpose, row.requested_at) == (person, "email_marketing", record.recorded_at)
    assert row.applied_at >= record.recorded_at
    assert row.latency_ms == pytest.approx((row.applied_at - record.recorded_at).total_seconds() * 1000, abs=0.1)
    assert 0 <= row.latency_ms < 10_000
    state = SyncState.objects.get(sync=sync, profile_id=person)
    assert (state.fingerprint, state.skip_reason) == ("", "consent")
    assert SyncState.objects.get(sync=sync, profile_id=other).fingerprint  # Ben stays
    # The next run plans nothing for them, and a trigger for them is skipped for consent.
    sent = len(server.accepted())
    again = run_sync(sync)
    assert again.planned == 0
    trigger = order_trigger(sync.destination)
    ingest_live(
        email="ana@example.com",
        event_type="order.completed",
        properties={"order_id": "o-1", "total": 80, "currency": "EUR"},
    )
    send = TriggerSend.objects.get(trigger=trigger, profile_id=person)
    assert (send.status, send.skip_reason) == ("skipped", "consent")
    assert len(server.accepted()) == sent


@pytest.mark.parametrize("mode", ["upsert", "mirror"])
def test_withdrawal_on_the_staff_page_removes_the_person_at_once(
    mode, client, make_user, ingest, ingest_live, audience, webhook_destination, make_sync, capture
):
    with LocalDestination() as server, LocalDestination() as untouched:
        sync, ana, ben = synced(ingest, audience, webhook_destination, make_sync, server, mode=mode)
        # A destination that does not need the purpose keeps them.
        other = make_sync(sync.segment, webhook_destination(untouched.url, consent_purpose=""), mode=mode)
        assert run_sync(other).applied == 2
        sent_before = len(server.accepted())
        client.force_login(make_user("privacy_officer"))
        with capture(execute=True):
            response = client.post(
                f"/profiles/{ana}/consent/new/",
                {"purpose": "email_marketing", "decision": "withdrawn", "note": "asked at the front desk"},
            )
        assert response.status_code == 302, response.content.decode()[:2000]
        record = ConsentRecord.objects.get(profile_id=ana, source__slug="back-office-staff")
        assert record.evidence["recorded_by"].startswith("user:privacy_officer")
        assert_suppressed_everywhere(
            server, sync, ana, ben, record=record, ingest_live=ingest_live, sent_before=sent_before
        )
        assert len(untouched.accepted()) == 2
        assert SyncState.objects.get(sync=other, profile_id=ana).fingerprint
        assert not SuppressionApplied.objects.filter(destination=other.destination).exists()


def test_withdrawal_through_the_rest_api_removes_the_person_at_once(
    api, ingest, ingest_live, audience, webhook_destination, make_sync, capture
):
    with LocalDestination() as server:
        sync, ana, ben = synced(ingest, audience, webhook_destination, make_sync, server)
        client = api("privacy_officer")
        with capture(execute=True):
            response = client.post(
                "/api/v1/consent-records/",
                {"profile": ana, "purpose": "email_marketing", "is_granted": False, "scope": "preference-centre-v2"},
                format="json",
            )
        assert response.status_code == 201, response.content
        record = ConsentRecord.objects.get(pk=response.json()["id"])
        assert (record.source.slug, record.scope) == ("rest-api", "preference-centre-v2")
        assert_suppressed_everywhere(server, sync, ana, ben, record=record, ingest_live=ingest_live, sent_before=2)


def _track_withdrawal(client, write_key, email, capture):
    message = {
        "type": "identify",
        "userId": f"u-{email}",
        "messageId": f"m-withdraw-{email}",
        "traits": {"email": email},
        "context": {"consent": {"categoryPreferences": {"email": False}}},
        "timestamp": timezone.now().isoformat(),
    }
    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    with capture(execute=True):
        response = client.post(
            "/v1/identify", data=json.dumps(message), content_type="application/json", HTTP_AUTHORIZATION=auth
        )
    assert response.status_code == 200, response.content
    raw = RawEvent.objects.get(external_id=f"m-withdraw-{email}")
    assert raw.status == RawEvent.PROCESSED, raw.error
    return raw


@pytest.mark.parametrize("path", ["hook", "sweeper"])
def test_withdrawal_through_the_tracking_api_is_propagated(
    path, client, ingest, ingest_live, audience, webhook_destination, make_sync, capture
):
    web, credentials = source_create(name="Web SDK", kind="tracking")
    with LocalDestination() as server:
        sync, ana, ben = synced(ingest, audience, webhook_destination, make_sync, server)
        if path == "hook":
            # The processing worker calls after_pipeline_consent once its batch has committed.
            raw = _track_withdrawal(client, credentials.write_key, "ana@example.com", capture)
        else:
            # The hook is lost (a crash between commit and the callback): the sweeper catches it.
            from unittest import mock

            with mock.patch("consent.propagation.after_pipeline_consent"):
                raw = _track_withdrawal(client, credentials.write_key, "ana@example.com", capture)
            assert withdrawals_sweep()["propagated"] == 1
        record = ConsentRecord.objects.get(raw_event=raw, purpose="email_marketing")
        assert (record.is_granted, record.source_id, record.profile_id) == (False, web.pk, ana)
        assert_suppressed_everywhere(server, sync, ana, ben, record=record, ingest_live=ingest_live, sent_before=2)
        # The sweeper finds nothing more to do.
        assert withdrawals_sweep() == {"propagated": 0, "errors": 0, "retried": 0, "removed_again": 0}


def test_rows_per_destination_repeat_and_no_destination_markers(ingest, audience, webhook_destination, make_sync):
    with LocalDestination() as server:
        sync, ana, _ = synced(ingest, audience, webhook_destination, make_sync, server)
        idle = webhook_destination(server.url, name="Idle email tool")  # needs the purpose, holds nobody
        sms = webhook_destination(server.url, name="SMS tool", consent_purpose="sms_marketing")
        first = consent_record(profile=ana, purpose="email_marketing", is_granted=False, channel=API, actor="api:a")
        rows = {row.destination_id: row for row in propagate_withdrawal(first)}
        assert set(rows) == {sync.destination_id, idle.pk}
        assert rows[sync.destination_id].status == "applied"
        assert (rows[idle.pk].status, rows[idle.pk].sync_id) == ("not_needed", None)
        assert rows[idle.pk].applied_at is not None
        assert sms.pk not in rows
        # Running it again sends nothing and adds nothing.
        sent = len(server.accepted())
        assert len(propagate_withdrawal(first)) == 2
        assert len(server.accepted()) == sent
        # The same withdrawal again (the tracking API repeats preferences on every event): one marker.
        repeat = consent_record(profile=ana, purpose="email_marketing", is_granted=False, channel=API, actor="api:a")
        [marker] = propagate_withdrawal(repeat)
        assert (marker.status, marker.destination_id) == ("not_needed", None)
        assert "repeats" in marker.message
        # No destination needs analytics.
        analytics = consent_record(profile=ana, purpose="analytics", is_granted=False, channel=API, actor="api:a")
        [marker] = propagate_withdrawal(analytics)
        assert (marker.status, marker.message) == ("not_needed", "no destination needs analytics")
        # A grant is not a withdrawal.
        grant = consent_record(profile=ana, purpose="analytics", is_granted=True, channel=API, actor="api:a")
        assert propagate_withdrawal(grant) == []
        assert len(server.accepted()) == sent


def test_a_failed_removal_is_visible_then_retried_by_the_sweeper_with_backoff(
    ingest, audience, webhook_destination, make_sync
):
    refusing = {"on": True}

    def answer(received):
        if refusing["on"] and received.json["type"] == "profile.removed":
            return Reply(503, {"error": "maintenance"})
        return Reply(200, {})

    with LocalDestination(answer) as server:
        sync, ana, _ = synced(ingest, audience, webhook_destination, make_sync, server, max_attempts=1)
        record = consent_record(profile=ana, purpose="email_marketing", is_granted=False, channel=STAFF, actor="u")
        [row] = propagate_withdrawal(record)
        assert (row.status, row.attempts, row.status_code) == ("failed", 1, 503)
        assert row.applied_at is None and row.latency_ms is None
        assert row.next_attempt_at > timezone.now() + timedelta(seconds=50)
        assert SyncState.objects.get(sync=sync, profile_id=ana).fingerprint  # still held there
        assert propagation_summary(since=timezone.now() - timedelta(days=1))["open_failures"] == 1

        assert suppressions_retry_due() == 0  # not due yet
        assert withdrawals_sweep(now=row.next_attempt_at + timedelta(seconds=1))["retried"] == 1
        row.refresh_from_db()
        assert (row.status, row.attempts) == ("failed", 2)  # still refused: backs off further
        assert row.next_attempt_at > timezone.now() + timedelta(seconds=110)

        refusing["on"] = False
        assert withdrawals_sweep(now=row.next_attempt_at + timedelta(seconds=1))["retried"] == 1
        row.refresh_from_db()
        assert (row.status, row.attempts, row.next_attempt_at) == ("applied", 3, None)
        assert row.latency_ms == pytest.approx((row.applied_at - record.recorded_at).total_seconds() * 1000, abs=0.1)
        assert bodies(server)[-1] == {**bodies(server)[-1], "type": "profile.removed"}
        assert not SyncState.objects.get(sync=sync, profile_id=ana).fingerprint


def test_after_the_last_round_a_failure_waits_for_a_person(ingest, audience, webhook_destination, make_sync):
    refuse_removals = lambda received: Reply(503 if received.json["type"] == "profile.removed" else 200, {})  # noqa: E731
    with LocalDestination(refuse_removals) as server:
        sync, ana, _ = synced(ingest, audience, webhook_destination, make_sync, server, max_attempts=1)
        record = consent_record(profile=ana, purpose="email_marketing", is_granted=False, channel=STAFF, actor="u")
        [row] = propagate_withdrawal(record)
        SuppressionApplied.objects.filter(pk=row.pk).update(attempts=MAX_ROUNDS - 1)
        assert suppressions_retry_due(now=timezone.now() + timedelta(hours=1)) == 1
        row.refresh_from_db()
        assert (row.status, row.attempts, row.next_attempt_at) == ("failed", MAX_ROUNDS, None)
        assert row.message.startswith(f"gave up after {MAX_ROUNDS} rounds")
        assert suppressions_retry_due(now=timezone.now() + timedelta(days=1)) == 0


def test_a_destination_without_removal_or_delete_is_a_failure_for_a_person(
    ingest, audience, webhook_destination, make_sync
):
    with LocalDestination() as server:
        sync, ana, _ = synced(
            ingest, audience, webhook_destination, make_sync, server, operations=["upsert", "update", "message"]
        )
        record = consent_record(profile=ana, purpose="email_marketing", is_granted=False, channel=STAFF, actor="u")
        [row] = propagate_withdrawal(record)
        assert (row.status, row.operation, row.next_attempt_at) == ("failed", "none", None)
        assert "cannot be sent" in row.message


def test_a_crash_between_planning_and_sending_is_picked_up_when_the_claim_expires(
    ingest, audience, webhook_destination, make_sync
):
    with LocalDestination() as server:
        sync, ana, _ = synced(ingest, audience, webhook_destination, make_sync, server)
        record = consent_record(profile=ana, purpose="email_marketing", is_granted=False, channel=STAFF, actor="u")
        propagation._plan(record.pk)  # the worker dies right after planning
        [row] = SuppressionApplied.objects.filter(consent_record=record)
        assert row.status == "pending" and len(server.accepted()) == 2
        assert withdrawals_sweep()["retried"] == 0  # claimed: someone may still be sending
        assert withdrawals_sweep(now=timezone.now() + CLAIM + timedelta(seconds=1))["retried"] == 1
        row.refresh_from_db()
        assert row.status == "applied" and bodies(server)[-1]["type"] == "profile.removed"


def test_a_grant_after_a_failed_removal_supersedes_the_retry(ingest, audience, webhook_destination, make_sync):
    with LocalDestination() as server:
        sync, ana, _ = synced(ingest, audience, webhook_destination, make_sync, server, max_attempts=1)
        server.responder = lambda received: Reply(503, {})
        record = consent_record(profile=ana, purpose="email_marketing", is_granted=False, channel=STAFF, actor="u")
        [row] = propagate_withdrawal(record)
        assert row.status == "failed"
        consent_record(profile=ana, purpose="email_marketing", is_granted=True, channel=STAFF, actor="u", scope="v2")
        sent = len(server.requests)
        assert suppressions_retry_due(now=timezone.now() + timedelta(hours=1)) == 1
        row.refresh_from_db()
        assert row.status == "superseded" and len(server.requests) == sent


def test_a_sync_run_in_flight_that_re_sends_the_person_is_undone_by_the_sweeper(
    ingest, audience, webhook_destination, make_sync
):
    from activations.syncs import prepare_payloads, snapshot_and_diff, sync_run_execute, sync_run_start

    with LocalDestination() as server:
        sync, ana, _ = synced(ingest, audience, webhook_destination, make_sync, server)
        ingest(email="ana@example.com", traits={"first_name": "Ana"})  # a change the next run sends
        run = sync_run_start(sync=sync, triggered_by="test", enqueue=False)
        snapshot_and_diff(run)  # the run reads its audience and builds payloads while Ana still consents...
        prepare_payloads(run)  # (a withdrawal before this point is caught here: tests/activations/test_syncs.py)
        record = consent_record(profile=ana, purpose="email_marketing", is_granted=False, channel=STAFF, actor="u")
        [row] = propagate_withdrawal(record)
        assert row.status == "applied"
        assert withdrawals_sweep()["removed_again"] == 0
        assert sync_run_execute(run.pk).applied == 1  # ...and sends her after the removal
        assert bodies(server)[-1]["type"] == "profile.upserted"
        assert SyncState.objects.get(sync=sync, profile_id=ana).fingerprint

        assert withdrawals_sweep()["removed_again"] == 1
        assert bodies(server)[-1] == {**bodies(server)[-1], "type": "profile.removed"}
        assert not SyncState.objects.get(sync=sync, profile_id=ana).fingerprint
        again = SuppressionApplied.objects.get(pk=row.pk)
        assert again.status == "applied" and again.message.startswith("removed again")
        assert again.applied_at > row.applied_at and again.attempts == 2
        assert withdrawals_sweep()["removed_again"] == 0


def test_latency_percentiles_count_applied_removals_only(ingest):
    from activations.destinations import destination_save

    ana = ingest(email="ana@example.com")
    now = timezone.now()

    def destination(slug):
        return destination_save(
            name=slug,
            slug=slug,
            kind="webhook",
            base_url="http://127.0.0.1:9",
            fields=[{"name": "email", "source": "identifier:email"}],
            idempotency_key="email",
            operations=["upsert", "remove"],
            consent_purpose="email_marketing",
            secrets={"signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
        )

    crm, ads = destination("crm"), destination("ads")

    def row(target, status, latency):
        record = ConsentRecord.objects.create(
            profile_id=ana, purpose="email_marketing", is_granted=False, captured_at=now
        )
        SuppressionApplied.objects.create(
            consent_record=record,
            profile_id=ana,
            purpose="email_marketing",
            destination=target,
            status=status,
            requested_at=now,
            applied_at=now,
            latency_ms=latency,
        )

    for latency in range(100, 2001, 100):
        row(crm, "applied", float(latency))
    for _ in range(3):
        row(ads, "applied", 50.0)
    row(ads, "not_needed", 1.0)  # not counted
    row(crm, "failed", None)
    summary = propagation_summary(since=now - timedelta(days=1))
    # 23 values: 50 ×3, 100 … 2000. Nearest rank: p50 = 12th, p95 = 22nd.
    assert summary["overall"] == {"count": 23, "p50_ms": 900.0, "p95_ms": 1900.0, "max_ms": 2000.0}
    per = {entry["destination"].slug: entry for entry in summary["destinations"]}
    assert per["crm"]["latency"] == {"count": 20, "p50_ms": 1000.0, "p95_ms": 1900.0, "max_ms": 2000.0}
    assert per["ads"]["latency"] == {"count": 3, "p50_ms": 50.0, "p95_ms": 50.0, "max_ms": 50.0}
    assert per["ads"]["statuses"]["not_needed"] == 1 and per["crm"]["statuses"]["failed"] == 1
    assert summary["open_failures"] == 1
    # Outside the window: nothing.
    assert propagation_summary(since=now + timedelta(seconds=1))["overall"]["count"] == 0


def test_the_sweeper_is_scheduled_every_minute_and_the_hooks_never_raise(ingest, monkeypatch):
    from django_q.models import Schedule

    from consent.tasks_propagation import withdrawals_propagate_task, withdrawals_sweep_task

    schedule = Schedule.objects.get(name="consent_withdrawals_sweep")
    assert (schedule.func, schedule.schedule_type, schedule.minutes, schedule.repeats) == (
        "consent.tasks_propagation.withdrawals_sweep_task",
        "I",
        1,
        -1,
    )
    assert withdrawals_sweep_task() == {"propagated": 0, "errors": 0, "retried": 0, "removed_again": 0}
    ana = ingest(email="ana@example.com", consent={"email_marketing": False})
    [record] = ConsentRecord.objects.filter(profile_id=ana)
    # Ingestion must not fail because propagation does: the sweeper picks the withdrawal up later.
    monkeypatch.setattr(propagation, "withdrawals_enqueue", lambda ids: 1 / 0)
    after_pipeline_consent(raw_event_ids=[record.raw_event_id])
    monkeypatch.setattr(propagation, "propagate_withdrawal", lambda record_id: 1 / 0)
    assert withdrawals_propagate_task(consent_record_ids=[record.pk]) == {"propagated": 0, "errors": 1}
    monkeypatch.undo()
    assert withdrawals_sweep_task()["propagated"] == 1
    [marker] = SuppressionApplied.objects.filter(consent_record=record)
    assert (marker.status, marker.message) == ("not_needed", "no destination needs email_marketing")

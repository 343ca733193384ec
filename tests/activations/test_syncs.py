"""Sync runs against a live local webhook receiver: diffs, skip reasons, retries, resume."""

import pytest

from activations.local_destination import LocalDestination, Reply
from activations.models import SyncRecord, SyncRun
from activations.syncs import sync_run_execute, sync_run_start
from segments.membership import segment_membership_refresh
from tests.activations.conftest import bodies

pytestmark = pytest.mark.django_db


def run_sync(sync, **options):
    run = sync_run_start(sync=sync, triggered_by="test", enqueue=False, **options)
    return sync_run_execute(run.pk)


def test_upsert_sends_the_audience_once_then_only_changes(ingest, audience, webhook_destination, make_sync):
    ana = ingest(
        email="ana@example.com", traits={"plan": "gold", "first_name": "Ana"}, consent={"email_marketing": True}
    )
    ben = ingest(email="ben@example.com", traits={"plan": "gold"}, consent={"email_marketing": False})
    ingest(email="cy@example.com", traits={"plan": "silver"}, consent={"email_marketing": True})
    segment = audience()
    with LocalDestination() as server:
        sync = make_sync(segment, webhook_destination(server.url))
        run = run_sync(sync)
        assert run.status == SyncRun.COMPLETED, run.error
        assert (run.members, run.planned, run.applied, run.failed) == (2, 1, 1, 0)
        assert run.skipped_reasons == {"consent": 1}
        [body] = bodies(server)
        assert body["type"] == "profile.upserted"
        assert body["data"] == {
            "key": "ana@example.com",
            "email": "ana@example.com",
            "plan": "gold",
            "first_name": "Ana",
            "ltv": 0.0,
        }
        skipped = SyncRecord.objects.get(run=run, status="skipped")
        assert (skipped.profile_id, skipped.skip_reason) == (ben, "consent")

        again = run_sync(sync)
        assert (again.planned, again.applied, again.skipped) == (0, 0, 1)
        assert not SyncRecord.objects.filter(run=again).exists()  # the same reason is not recorded twice
        assert len(server.accepted()) == 1

        ingest(email="ana@example.com", traits={"first_name": "Anna"})
        changed = run_sync(sync)
        assert (changed.planned, changed.applied) == (1, 1)
        assert bodies(server)[-1]["data"]["first_name"] == "Anna"
        assert SyncRecord.objects.get(run=changed).profile_id == ana


def test_skip_reasons_holdout_suppression_low_confidence_and_no_key(ingest, audience, webhook_destination, make_sync):
    ok = ingest(email="ok@example.com", traits={"plan": "gold"}, consent={"email_marketing": True})
    suppressed = ingest(
        email="sup@example.com", traits={"plan": "gold", "vip": "no"}, consent={"email_marketing": True}
    )
    keyless = ingest(customer="cus_1", traits={"plan": "gold"}, consent={"email_marketing": True})
    segment = audience()
    audience({"all": [{"trait": "vip", "op": "eq", "value": "no"}]}, suppression=True)
    from profiles.models import Profile

    low = ingest(email="low@example.com", traits={"plan": "gold"}, consent={"email_marketing": True})
    Profile.objects.filter(pk=low).update(merge_confidence=0.5)
    segment_membership_refresh(segment=segment)
    with LocalDestination() as server:
        sync = make_sync(segment, webhook_destination(server.url))
        run = run_sync(sync)
        assert run.skipped_reasons == {"suppression": 1, "no_key": 1, "low_confidence": 1}
        assert [body["data"]["email"] for body in bodies(server)] == ["ok@example.com"]
        reasons = dict(SyncRecord.objects.filter(run=run, status="skipped").values_list("profile_id", "skip_reason"))
        assert reasons == {suppressed: "suppression", keyless: "no_key", low: "low_confidence"}
        assert SyncRecord.objects.get(run=run, status="applied").profile_id == ok


def test_holdout_members_are_never_sent(ingest, audience, webhook_destination, make_sync):
    for index in range(30):
        ingest(email=f"p{index}@example.com", traits={"plan": "gold"}, consent={"email_marketing": True})
    segment = audience(holdout_percent=30)
    held = set(segment.memberships.filter(is_holdout=True).values_list("profile_id", flat=True))
    assert held
    with LocalDestination() as server:
        run = run_sync(make_sync(segment, webhook_destination(server.url)))
        assert run.skipped_reasons == {"holdout": len(held)}
        assert run.applied == 30 - len(held)
        sent = set(SyncRecord.objects.filter(run=run, status="applied").values_list("profile_id", flat=True))
        assert not sent & held


def test_mirror_removes_people_who_leave_or_withdraw(ingest, audience, webhook_destination, make_sync):
    ingest(email="stay@example.com", traits={"plan": "gold"}, consent={"email_marketing": True})
    leaver = ingest(email="leave@example.com", traits={"plan": "gold"}, consent={"email_marketing": True})
    withdraws = ingest(email="quit@example.com", traits={"plan": "gold"}, consent={"email_marketing": True})
    segment = audience()
    with LocalDestination() as server:
        sync = make_sync(segment, webhook_destination(server.url), mode="mirror")
        first = run_sync(sync)
        assert first.applied == 3
        ingest(email="leave@example.com", traits={"plan": "silver"})
        ingest(email="quit@example.com", consent={"email_marketing": False})
        segment_membership_refresh(segment=segment)
        second = run_sync(sync)
        assert second.operations == {"remove": 2}
        removed = {body["data"]["key"] for body in bodies(server)[3:]}
        assert removed == {"leave@example.com", "quit@example.com"}
        assert all(body["type"] == "profile.removed" for body in bodies(server)[3:])
        records = SyncRecord.objects.filter(run=second, operation="remove")
        assert {(r.profile_id, r.skip_reason) for r in records} == {(leaver, ""), (withdraws, "consent")}
        assert run_sync(sync).planned == 0
        # Consent granted again: they come back.
        ingest(email="quit@example.com", consent={"email_marketing": True})
        assert run_sync(sync).operations == {"upsert": 1}


def test_dry_run_sends_nothing_and_shows_each_payload(ingest, audience, webhook_destination, make_sync):
    ingest(email="ana@example.com", traits={"plan": "gold"}, consent={"email_marketing": True})
    with LocalDestination() as server:
        sync = make_sync(audience(), webhook_destination(server.url))
        dry = run_sync(sync, dry_run=True)
        assert (dry.status, dry.planned, dry.applied) == ("completed", 1, 0)
        record = SyncRecord.objects.get(run=dry)
        assert record.status == "dry_run"
        assert record.payload_values == {"email": "ana@example.com", "plan": "gold", "first_name": None, "ltv": 0.0}
        assert server.requests == []
        # The dry run changed nothing: a real run still sends.
        assert run_sync(sync).applied == 1


def test_hashed_destination_never_receives_cleartext(ingest, audience, webhook_destination, make_sync):
    import hashlib

    ingest(email=" Ana@Example.com ", traits={"plan": "gold"}, consent={"email_marketing": True})
    with LocalDestination() as server:
        run_sync(make_sync(audience(), webhook_destination(server.url, pii_mode="hashed")))
        [request] = server.accepted()
        assert b"ana@example.com" not in request.body.lower()
        assert request.json["data"]["email"] == hashlib.sha256(b"ana@example.com").hexdigest()


def test_per_record_failures_retries_and_retry_after(ingest, audience, webhook_destination, make_sync):
    """5xx is retried with backoff, a 4xx fails only its record, 429 waits Retry-After."""
    import time

    for name in ("ok", "bad", "flaky", "limited"):
        ingest(email=f"{name}@example.com", traits={"plan": "gold"}, consent={"email_marketing": True})
    seen = {}

    def responder(received):
        email = received.json["data"]["email"]
        seen[email] = seen.get(email, 0) + 1
        if email == "bad@example.com":
            return Reply(422, {"error": "invalid email domain"})
        if email == "flaky@example.com" and seen[email] == 1:
            return Reply(503, {"error": "try later"})
        if email == "limited@example.com" and seen[email] == 1:
            return Reply(429, {"error": "slow down"}, {"Retry-After": "1"})
        return Reply(200, {"ok": True})

    from activations import delivery

    with LocalDestination(responder) as server:
        sync = make_sync(audience(), webhook_destination(server.url))
        original = delivery.BACKOFF_BASE_SECONDS
        delivery.BACKOFF_BASE_SECONDS = 0.05
        try:
            started = time.monotonic()
            run = run_sync(sync)
        finally:
            delivery.BACKOFF_BASE_SECONDS = original
        assert run.status == "completed"
        assert (run.planned, run.applied, run.failed) == (4, 3, 1)
        records = {r.payload_values["email"]: r for r in SyncRecord.objects.filter(run=run)}
        assert records["bad@example.com"].status == "failed"
        assert "invalid email domain" in records["bad@example.com"].error
        assert records["bad@example.com"].attempts == 1  # a 4xx is not retried
        assert records["flaky@example.com"].attempts == 2
        assert records["limited@example.com"].attempts == 1  # the 429 did not count
        limited = [r for r in server.requests if r.json["data"]["email"] == "limited@example.com"]
        assert limited[1].at - limited[0].at >= 0.95  # nothing before Retry-After
        assert time.monotonic() - started < 10
        assert seen == {"ok@example.com": 1, "bad@example.com": 1, "flaky@example.com": 2, "limited@example.com": 2}
        # The failed record is retried by the next run (it was never accepted); the others are not.
        again = run_sync(sync)
        assert again.operations == {"upsert": 1}


def test_records_that_keep_failing_are_parked_and_can_be_replayed(ingest, audience, webhook_destination, make_sync):
    from activations import delivery
    from activations.syncs import sync_run_retry_failed

    ingest(email="ana@example.com", traits={"plan": "gold"}, consent={"email_marketing": True})
    healthy = {"value": False}

    def responder(received):
        return Reply(200, {}) if healthy["value"] else Reply(500, {"error": "down"})

    with LocalDestination(responder) as server:
        sync = make_sync(audience(), webhook_destination(server.url, max_attempts=3))
        original = delivery.BACKOFF_BASE_SECONDS
        delivery.BACKOFF_BASE_SECONDS = 0.01
        try:
            run = run_sync(sync)
        finally:
            delivery.BACKOFF_BASE_SECONDS = original
        record = SyncRecord.objects.get(run=run)
        assert (record.status, record.attempts) == ("failed", 3)
        assert record.error.startswith("gave up after 3 attempts")
        assert len(server.requests) == 3
        healthy["value"] = True
        assert sync_run_retry_failed(run=run, enqueue=False) == 1
        run = sync_run_execute(run.pk)
        record.refresh_from_db()
        assert (run.status, run.applied, record.status) == ("completed", 1, "applied")


def test_interrupted_run_resumes_without_resending_answered_records(ingest, audience, webhook_destination, make_sync):
    """A worker dies after some batches: answered records are never sent again; the batch that was
    in flight goes again under the same webhook-id, which receivers deduplicate."""
    from datetime import timedelta

    from django.utils import timezone

    from activations.models import SyncRun
    from activations.syncs import prepare_payloads, snapshot_and_diff

    for index in range(6):
        ingest(email=f"p{index}@example.com", traits={"plan": "gold"}, consent={"email_marketing": True})
    with LocalDestination() as server:
        sync = make_sync(audience(), webhook_destination(server.url))
        run = sync_run_start(sync=sync, triggered_by="test", enqueue=False)
        SyncRun.objects.filter(pk=run.pk).update(status="running", heartbeat_at=timezone.now())
        run.refresh_from_db()
        snapshot_and_diff(run)
        prepare_payloads(run)
        # Two records answered, one in flight when the worker was killed.
        records = list(SyncRecord.objects.filter(run=run).order_by("id"))
        from activations.connectors import connector_for
        from activations.delivery import client_for
        from activations.syncs import _claim, _send_batch

        connector = connector_for(sync.destination)
        with client_for(connector) as client:
            for _ in range(2):
                _send_batch(run, connector, client, _claim(run, 1))
        in_flight = _claim(run, 1)
        assert [r.status for r in SyncRecord.objects.filter(pk__in=[r.pk for r in records[:3]])] == [
            "applied",
            "applied",
            "sending",
        ]
        # The dead worker's lease and heartbeat expire.
        past = timezone.now() - timedelta(minutes=5)
        SyncRecord.objects.filter(pk=in_flight[0].pk).update(claimed_until=past)
        SyncRun.objects.filter(pk=run.pk).update(heartbeat_at=past)
        resumed = sync_run_execute(run.pk)
        assert (resumed.status, resumed.applied) == ("completed", 6)
        ids = [request.headers["webhook-id"] for request in server.accepted()]
        assert len(ids) == 6 == len(set(ids))
        assert SyncRecord.objects.get(pk=in_flight[0].pk).attempts == 2


def test_guards_pause_the_run_with_a_reason(ingest, audience, webhook_destination, make_sync):
    from profiles.models import Profile

    ingest(email="a@example.com", traits={"plan": "gold"}, consent={"email_marketing": True})
    low = ingest(email="b@example.com", traits={"plan": "gold"}, consent={"email_marketing": True})
    Profile.objects.filter(pk=low).update(merge_confidence=0.2)
    with LocalDestination() as server:
        sync = make_sync(audience(), webhook_destination(server.url), guard_max_low_confidence_share=0.25)
        run = run_sync(sync)
        assert run.status == "paused"
        assert "50.0% of members have merge confidence under 0.8" in run.pause_reason
        assert server.requests == []
        from activations.syncs import sync_run_resume_paused

        override = sync_run_resume_paused(run=run, triggered_by="user:lead")
        override = sync_run_execute(override.pk)
        assert override.status == "completed" and override.applied == 1
        assert override.pause_reason.startswith("Guards overridden")


def test_a_second_run_is_refused_while_one_is_unfinished(ingest, audience, webhook_destination, make_sync):
    from activations.syncs import SyncBusy

    ingest(email="a@example.com", traits={"plan": "gold"}, consent={"email_marketing": True})
    sync = make_sync(audience(), webhook_destination("http://127.0.0.1:9"))
    first = sync_run_start(sync=sync, triggered_by="test", enqueue=False)
    with pytest.raises(SyncBusy) as busy:
        sync_run_start(sync=sync, triggered_by="test", enqueue=False)
    assert busy.value.run == first
    assert sync_run_start(sync=sync, triggered_by="test", enqueue=False, dry_run=True).is_dry_run


def test_contract_refuses_fields_outside_it(ingest, audience, webhook_destination, make_sync):
    from activations.syncs import SyncNotReady

    ingest(email="a@example.com", traits={"plan": "gold"}, consent={"email_marketing": True})
    sync = make_sync(audience(), webhook_destination("http://127.0.0.1:9"), fields=["email", "password"])
    with pytest.raises(SyncNotReady, match="outside the destination's contract: password"):
        sync_run_start(sync=sync, triggered_by="test", enqueue=False)


def test_braze_sync_batches_of_75_with_a_per_record_error(ingest, audience, make_sync):
    """The engine with a vendor connector: Braze-sized batches, one refused object fails alone."""
    from activations.destinations import destination_save
    from tests.activations.vendors import braze_responder

    ids = [
        ingest(email=f"p{index}@example.com", traits={"plan": "gold"}, consent={"email_marketing": True})
        for index in range(80)
    ]
    with LocalDestination(braze_responder(fail_external_ids={str(ids[3])}, api_key="braze-key")) as server:
        destination = destination_save(
            secrets={"api_key": "braze-key"},
            name="Braze",
            slug="braze",
            kind="braze",
            base_url=server.url,
            fields=[
                {"name": "external_id", "source": "profile:id"},
                {"name": "email", "source": "identifier:email"},
                {"name": "plan", "source": "trait:plan"},
            ],
            idempotency_key="external_id",
            operations=["upsert", "update", "remove", "delete"],
            consent_purpose="email_marketing",
            pii_mode="cleartext",
            rate_limit_per_second=1000,
            batch_size=75,
        )
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT secrets FROM activations_destination WHERE id = %s", [destination.pk])
            stored = cursor.fetchone()[0]
        assert "braze-key" not in stored and stored.startswith("gAAAA")  # a Fernet token at rest
        run = run_sync(make_sync(audience(), destination))
        assert [len(request.json["attributes"]) for request in server.accepted()] == [75, 5]
        assert (run.planned, run.applied, run.failed, run.requests) == (80, 79, 1, 2)
        failed = SyncRecord.objects.get(run=run, status="failed")
        assert failed.profile_id == ids[3] and "valid email" in failed.error


def test_a_withdrawal_between_snapshot_and_send_is_honoured(ingest, audience, webhook_destination, make_sync):
    from activations.models import SyncRun
    from activations.syncs import prepare_payloads, snapshot_and_diff
    from profiles.models import Profile

    ana = ingest(email="ana@example.com", traits={"plan": "gold"}, consent={"email_marketing": True})
    with LocalDestination() as server:
        sync = make_sync(audience(), webhook_destination(server.url))
        run = sync_run_start(sync=sync, triggered_by="test", enqueue=False)
        SyncRun.objects.filter(pk=run.pk).update(status="running")
        run.refresh_from_db()
        snapshot_and_diff(run)
        assert run.planned == 1
        profile = Profile.objects.get(pk=ana)
        profile.consent["email_marketing"]["is_granted"] = False
        profile.save(update_fields=["consent"])
        prepare_payloads(run)
        SyncRun.objects.filter(pk=run.pk).update(heartbeat_at=None)  # released, as between slices
        run = sync_run_execute(run.pk)
        assert run.status == "completed"
        assert server.requests == []
        assert SyncRecord.objects.get(run=run).skip_reason == "consent"


def test_payloads_and_keys_are_encrypted_at_rest(ingest, audience, webhook_destination, make_sync):
    from django.db import connection

    ingest(email="ana@example.com", traits={"plan": "gold"}, consent={"email_marketing": True})
    with LocalDestination() as server:
        run = run_sync(make_sync(audience(), webhook_destination(server.url)))
    with connection.cursor() as cursor:
        cursor.execute("SELECT key, payload FROM activations_syncrecord WHERE run_id = %s", [run.pk])
        [(key, payload)] = cursor.fetchall()
        cursor.execute("SELECT key FROM activations_syncstate WHERE record_id IS NOT NULL")
        [(state_key,)] = cursor.fetchall()
    for stored in (key, payload, state_key):
        assert "ana@example.com" not in stored and stored.startswith("gAAAA")
    assert SyncRecord.objects.get(run=run).key == "ana@example.com"

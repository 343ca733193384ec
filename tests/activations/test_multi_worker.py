"""Several workers against one database: two worker processes sending to one destination keep to
its rate limit together; a 429 pause longer than the claim on the records gives them back (syncs,
triggers) or fails the direct send for a later retry, instead of sleeping while another worker takes
them over; a shorter Retry-After never shortens a pause; and a sync run taken over in the middle of
its snapshot plans and sends each person once."""

import multiprocessing
import threading
import time
from collections import Counter
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import connection, connections
from django.db.models import Value
from django.utils import timezone

from activations import delivery, syncs
from activations.direct import remove_for_withdrawal
from activations.local_destination import LocalDestination, Reply
from activations.models import Destination, SyncRecord, SyncRun, SyncSnapshot, SyncState, TriggerSend
from activations.syncs import prepare_payloads, snapshot_and_diff, sync_run_execute, sync_run_start
from tests.activations.test_delivery_faults import Clock, gold_people, run_sync
from tests.activations.test_direct import synced
from tests.activations.test_triggers import event_trigger, order


def postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: several connections writing at once, row locks")


@pytest.fixture
def clock(monkeypatch):
    """test_delivery_faults' injected clock: sleeps, monotonic time, timezone.now() and the
    database's clock as delivery reads it, all moving only when someone sleeps."""
    clock = Clock()
    fake_time = SimpleNamespace(monotonic=clock.monotonic, sleep=clock.sleep, perf_counter=time.perf_counter)
    monkeypatch.setattr(delivery, "time", fake_time)
    monkeypatch.setattr(syncs, "time", fake_time)
    monkeypatch.setattr(timezone, "now", clock.now)
    monkeypatch.setattr(delivery, "Now", lambda: Value(clock.now()))
    return clock


# -- the rate limit, across processes ---------------------------------------------------------------


def _worker_process(run_id: int, start) -> None:
    """One worker process: wait for the other, then send its run (its own database connection)."""
    start.wait(timeout=20)
    try:
        sync_run_execute(run_id)
    finally:
        connections.close_all()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_worker_processes_sending_to_one_destination_keep_to_its_rate_together(
    send, audience, webhook_destination, make_sync
):
    postgresql_only()
    rate, people = 20, 10
    gold_people(send, people)
    segment = audience()
    with LocalDestination() as server:
        destination = webhook_destination(server.url, rate_limit_per_second=rate)
        runs = []
        for _ in range(2):
            run = sync_run_start(sync=make_sync(segment, destination), triggered_by="test", enqueue=False)
            snapshot_and_diff(run)
            prepare_payloads(run)
            runs.append(run)
        connections.close_all()  # the children open their own connections
        context = multiprocessing.get_context("fork")
        start = context.Barrier(2)
        workers = [context.Process(target=_worker_process, args=(run.pk, start)) for run in runs]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=30)
        assert [worker.exitcode for worker in workers] == [0, 0]

    assert [SyncRun.objects.get(pk=run.pk).applied for run in runs] == [people, people]
    arrivals = sorted(request.at for request in server.requests)
    assert len(arrivals) == 2 * people
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:], strict=False)]
    # 20 requests at 20/s: 19 gaps of 50 ms (each process alone at 20/s would make it 0.45 s).
    assert arrivals[-1] - arrivals[0] >= 0.9 * (2 * people - 1) / rate
    assert sorted(gaps)[len(gaps) // 2] >= 0.8 / rate
    busiest = max(sum(1 for at in arrivals if first <= at < first + 0.5) for first in arrivals)
    assert busiest <= 0.5 * rate + 2


# -- a pause longer than the claim ------------------------------------------------------------------


def test_a_pause_longer_than_the_claim_gives_the_records_back_instead_of_sleeping(
    send, audience, webhook_destination, make_sync, clock
):
    gold_people(send, 3)
    with LocalDestination() as server:
        destination = webhook_destination(server.url)
        pause_end = clock.now() + timedelta(seconds=300)  # a Retry-After: 300 answered to another worker
        Destination.objects.filter(pk=destination.pk).update(paused_until=pause_end)
        run = run_sync(make_sync(audience(), destination))

        # The slice ended at once: nothing sent, nothing slept through, the run left to the scheduler.
        assert server.requests == []
        assert sum(clock.sleeps) < 1
        run.refresh_from_db()
        assert (run.status, run.heartbeat_at, run.requests) == ("running", None, 0)
        records = list(SyncRecord.objects.filter(run=run))
        assert [(record.status, record.attempts, record.claimed_until) for record in records] == [
            ("pending", 0, None)
        ] * 3
        assert all(record.next_attempt_at >= pause_end - timedelta(seconds=1) for record in records)
        assert all(record.error.startswith("not sent: the destination's next send slot is") for record in records)
        assert Destination.objects.get(pk=destination.pk).next_send_at is None  # no slot taken for them

        # Once the pause is over, the resumed run sends each of them once.
        clock.sleep(300)
        run = sync_run_execute(run.pk)
        assert (run.status, run.applied, run.requests) == ("completed", 3, 3)
        assert len(server.requests) == 3


# 300 s: past the trigger send's claim. 20 s: within what the claim allows a queued send to wait,
# but past the processing worker's 2 s inline budget, which must not wait for it either.
@pytest.mark.parametrize("pause_seconds", [300, 20])
def test_a_trigger_send_to_a_paused_destination_waits_in_the_database_not_in_the_worker(
    ingest, ingest_live, webhook_destination, clock, pause_seconds
):
    ingest(email="ana@example.com", traits={"plan": "gold", "first_name": "Ana"}, consent={"email_marketing": True})
    with LocalDestination() as server:
        destination = webhook_destination(server.url)
        trigger = event_trigger(destination)
        pause_end = clock.now() + timedelta(seconds=pause_seconds)
        Destination.objects.filter(pk=destination.pk).update(paused_until=pause_end)
        order(ingest_live, "ana@example.com", 80)

        assert server.requests == []
        assert sum(clock.sleeps) < 3
        send = TriggerSend.objects.get(trigger=trigger)
        assert (send.status, send.attempts, send.claimed_until) == ("pending", 0, None)
        assert send.next_attempt_at >= pause_end - timedelta(seconds=1)


def test_a_direct_removal_to_a_destination_paused_past_its_wait_fails_at_once_for_a_later_retry(
    ingest, audience, webhook_destination, make_sync, clock
):
    with LocalDestination() as server:
        sync, ana = synced(ingest, audience, webhook_destination, make_sync, server)
        Destination.objects.filter(pk=sync.destination_id).update(paused_until=clock.now() + timedelta(seconds=300))
        sent, slept = len(server.requests), sum(clock.sleeps)
        [outcome] = remove_for_withdrawal(profile_id=ana, purpose="email_marketing")

        assert len(server.requests) == sent and sum(clock.sleeps) - slept < 1
    assert not outcome.ok
    assert outcome.message == "not sent: the destination's next send slot is 300 s away"
    assert SyncState.objects.get(sync=sync, profile_id=ana).fingerprint  # still held there: retried later


def test_a_shorter_retry_after_never_shortens_a_longer_pause(
    send, audience, webhook_destination, make_sync, clock, monkeypatch
):
    gold_people(send, 1)
    answers = iter([Reply(429, {"error": "slow down"}, {"Retry-After": "5"})])
    with LocalDestination(lambda received: next(answers, Reply(200, {}))) as server:
        destination = webhook_destination(server.url)
        longer = {}
        real_wait = delivery.wait_for_destination

        def wait_while_another_sender_is_paused_longer(*args, **kwargs):
            waited = real_wait(*args, **kwargs)
            if not longer:  # while this request is on its way, another sender gets a Retry-After: 300
                longer["until"] = clock.now() + timedelta(seconds=300)
                Destination.objects.filter(pk=destination.pk).update(paused_until=longer["until"])
            return waited

        monkeypatch.setattr(delivery, "wait_for_destination", wait_while_another_sender_is_paused_longer)
        run = run_sync(make_sync(audience(), destination))

    assert Destination.objects.get(pk=destination.pk).paused_until == longer["until"]
    assert len(server.requests) == 1  # the 429 only: the record waits for the longer pause
    [record] = SyncRecord.objects.filter(run=run)
    assert record.status == "pending" and record.next_attempt_at >= longer["until"] - timedelta(seconds=1)


# -- a run taken over mid-snapshot ------------------------------------------------------------------


def test_a_run_past_its_snapshot_is_not_snapshotted_again(send, audience, webhook_destination, make_sync):
    gold_people(send, 3)
    with LocalDestination() as server:
        run = sync_run_start(
            sync=make_sync(audience(), webhook_destination(server.url)), triggered_by="test", enqueue=False
        )
        snapshot_and_diff(run)
        planned = list(SyncRecord.objects.filter(run=run).values_list("id", "profile_id"))
        snapshot_and_diff(run)  # a second worker that got hold of the run late

    assert run.phase == SyncRun.PREPARE
    assert list(SyncRecord.objects.filter(run=run).values_list("id", "profile_id")) == planned
    assert len(planned) == SyncSnapshot.objects.filter(run=run).count() == 3


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_run_taken_over_in_the_middle_of_its_snapshot_plans_and_sends_each_person_once(
    send, audience, webhook_destination, make_sync, monkeypatch
):
    """Worker A is inside the snapshot transaction when the lease runs out; worker B, sent by the
    tick, tries to take the run over. Each worker is a thread with its own database connection."""
    postgresql_only()
    people = 4
    gold_people(send, people)
    inside, release = threading.Event(), threading.Event()
    real_diff = syncs.diff_into_records

    def diff_then_hold(run, *, now):
        real_diff(run, now=now)
        if threading.current_thread().name == "worker-a":
            inside.set()
            release.wait(10)

    monkeypatch.setattr(syncs, "diff_into_records", diff_then_hold)
    outcomes = {}

    def worker(name, run_id):
        try:
            outcomes[name] = sync_run_execute(run_id)
        finally:
            connection.close()

    with LocalDestination() as server:
        sync = make_sync(audience(), webhook_destination(server.url))
        run = sync_run_start(sync=sync, triggered_by="test", enqueue=False)
        a = threading.Thread(target=worker, args=("a", run.pk), name="worker-a")
        a.start()
        assert inside.wait(10)
        lease = syncs.LEASE_SECONDS
        monkeypatch.setattr(syncs, "LEASE_SECONDS", 0)  # A's heartbeat looks stale to B
        b = threading.Thread(target=worker, args=("b", run.pk), name="worker-b")
        b.start()
        b.join(timeout=2)
        monkeypatch.setattr(syncs, "LEASE_SECONDS", lease)
        release.set()
        a.join(timeout=20)
        b.join(timeout=20)
        assert not a.is_alive() and not b.is_alive()

    profile_ids = list(SyncRecord.objects.filter(run=run).values_list("profile_id", flat=True))
    assert len(profile_ids) == len(set(profile_ids)) == people
    assert SyncSnapshot.objects.filter(run=run).count() == people
    received = Counter(request.json["data"]["email"] for request in server.requests)
    assert received == {f"p{n}@example.com": 1 for n in range(people)}
    run.refresh_from_db()
    assert (run.status, run.planned, run.applied) == ("completed", people, people)
    assert outcomes["b"] is None  # B found the run held and left it

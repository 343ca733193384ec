"""A django-q2 worker killed (SIGKILL, the whole cluster) in the middle of a sync run's send phase,
while a request is in flight: after a restart the every-minute tick resumes the run; records already
answered are never sent again, the one in flight goes again under the same idempotency key, so the
destination (deduplicating on `webhook-id`) applies every record exactly once."""

import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from activations.local_destination import LocalDestination, Reply
from activations.models import SyncRecord, SyncRun, SyncState
from activations.syncs import sync_run_start
from profiles.loadtest import enqueue, wait_until
from tests.faults.conftest import gold_sync

PEOPLE = 12
KILL_AT = 5  # the request in flight when the worker dies


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("broker, workers", [("orm", 1), ("redis", 2)])
def test_worker_killed_mid_send_then_each_record_is_applied_once(broker, workers, request, child_env, clusters):
    env = dict(child_env)
    if broker == "redis":
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
    in_flight, release = threading.Event(), threading.Event()
    ids: list[str] = []

    def responder(received):
        ids.append(received.headers["webhook-id"])
        if len(ids) == KILL_AT:
            in_flight.set()
            release.wait(30)  # the worker dies while waiting for this answer
        return Reply(200, {"ok": True})

    with LocalDestination(responder) as server:
        sync = gold_sync(server.url, broker, people=PEOPLE)
        run = sync_run_start(sync=sync, triggered_by="fault test", enqueue=False)
        cluster = clusters(env, workers=workers)
        enqueue("activations.tasks.sync_run_task", run.pk, env=env)
        assert in_flight.wait(90), cluster.output()
        cluster.kill()
        release.set()

        statuses = Counter(SyncRecord.objects.filter(run=run).values_list("status", flat=True))
        assert statuses == {"applied": KILL_AT - 1, "sending": 1, "pending": PEOPLE - KILL_AT}
        lost = SyncRecord.objects.get(run=run, status="sending")
        assert SyncRun.objects.get(pk=run.pk).status == SyncRun.RUNNING

        # Two minutes later (the lease): the run's heartbeat and the in-flight claim have expired.
        past = timezone.now() - timedelta(minutes=3)
        SyncRun.objects.filter(pk=run.pk).update(heartbeat_at=past)
        SyncRecord.objects.filter(pk=lost.pk).update(claimed_until=past)
        clusters(env, workers=workers)
        enqueue("activations.tasks.activations_tick_task", env=env)  # what the schedule runs every minute
        wait_until(
            lambda: SyncRun.objects.get(pk=run.pk).status == SyncRun.COMPLETED, timeout=90, message="the resumed run"
        )

    run.refresh_from_db()
    assert (run.planned, run.applied, run.failed) == (PEOPLE, PEOPLE, 0)
    records = {record.pk: record for record in SyncRecord.objects.filter(run=run)}
    # Server side: one idempotency key per record; only the one in flight at the kill arrived twice.
    received = Counter(ids)
    assert len(received) == PEOPLE
    assert {key for key, n in received.items() if n > 1} == {f"sync-{run.pk}-{lost.pk}"}
    assert received[f"sync-{run.pk}-{lost.pk}"] == 2
    assert {pk: record.attempts for pk, record in records.items()} == {pk: 2 if pk == lost.pk else 1 for pk in records}
    assert SyncState.objects.filter(sync=sync).count() == PEOPLE

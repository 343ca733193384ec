"""A django-q2 worker killed (SIGKILL, the whole cluster) in the middle of processing a batch: the
batch's transaction dies with it, the raw events stay pending, and after a restart the sweeper (the
task the every-minute schedule runs) processes each one exactly once. With Redis as the broker the
in-flight tasks are simply gone, so only the sweeper can finish the work."""

import psycopg
import pytest
import redis
from django.db import transaction
from django.db.models import Count
from django_q.models import Task

from identity.locks import IDENTITY_LOCK_KEY
from profiles.loadtest import enqueue, wait_until
from profiles.models import Event, RawEvent
from profiles.sources import source_create
from tests.faults.conftest import database_url, store_pending, webhook_event

EVENTS = 1500
BATCH = 50

WAITING_FOR_IDENTITY_LOCK = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = %s "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


def _unlocked_pending() -> int:
    with transaction.atomic():
        return len(RawEvent.objects.select_for_update(skip_locked=True).filter(status=RawEvent.PENDING))


def _status_counts():
    return dict(RawEvent.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("broker, workers", [("orm", 1), ("redis", 2)])
def test_worker_killed_mid_batch_then_every_event_is_processed_once(broker, workers, request, child_env, clusters):
    env = {**child_env, "PROCESSING_BATCH_SIZE": str(BATCH)}
    if broker == "redis":
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
    source, _ = source_create(name="Kill test hooks", kind="standard_webhook")
    store_pending(
        source,
        [webhook_event(f"k{n % 300}@example.com", event_type="page.viewed", traits={"n": n}) for n in range(EVENTS)],
    )

    cluster = clusters(env, workers=workers)
    enqueue("profiles.tasks.raw_events_process_task", env=env, times=workers)
    wait_until(
        lambda: RawEvent.objects.filter(status=RawEvent.PROCESSED).exists(),
        timeout=60,
        interval=0.02,
        message="the first batches to be processed",
    )
    # "In the middle of a batch", made certain: the test takes the identity lock between two
    # batches, so the next batch is claimed (its rows locked in an open transaction) and waits for
    # the lock inside _apply. That waiting transaction is what the kill interrupts.
    with psycopg.connect(database_url(), autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", [IDENTITY_LOCK_KEY])
        processed_before = RawEvent.objects.filter(status=RawEvent.PROCESSED).count()
        wait_until(
            lambda: holder.execute(WAITING_FOR_IDENTITY_LOCK, [IDENTITY_LOCK_KEY]).fetchone()[0] >= 1,
            timeout=30,
            message="a worker to claim a batch",
        )
        cluster.kill()
    # The killed backends' transactions are rolled back: nothing of the batch was applied.
    wait_until(lambda: _unlocked_pending() == EVENTS - processed_before, timeout=30, message="the rollback")
    assert _status_counts() == {RawEvent.PROCESSED: processed_before, RawEvent.PENDING: EVENTS - processed_before}
    assert 0 < processed_before < EVENTS
    assert Event.objects.count() == processed_before
    if broker == "redis":
        # Redis has no receipts: the tasks the workers held died with them.
        client = redis.Redis.from_url(env["REDIS_URL"])
        queued = sum(client.llen(key) for key in client.keys() if client.type(key) == b"list")
        client.close()
        assert queued == 0

    # Restart; the schedule's sweeper (enqueued here as the scheduler does once a minute) finishes.
    clusters(env, workers=workers)
    enqueue("profiles.tasks.raw_events_sweep_task", env=env)
    sweeps = Task.objects.filter(func="profiles.tasks.raw_events_sweep_task")
    wait_until(sweeps.exists, timeout=90, message="the sweeper to finish")

    assert _status_counts() == {RawEvent.PROCESSED: EVENTS}
    # Exactly once: every raw event's outcome committed once (the killed attempt left no count) and
    # produced its one event.
    assert set(RawEvent.objects.values_list("attempts", flat=True)) == {1}
    assert Event.objects.count() == EVENTS
    assert Event.objects.values("raw_event").distinct().count() == EVENTS
    assert [(task.success, task.result["processed"]) for task in sweeps] == [(True, EVENTS - processed_before)]

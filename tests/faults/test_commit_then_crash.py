"""A crash between a commit and the enqueue that should follow it (the on-commit callbacks live in
the process's memory and die with it): the sweeper finds the work. A rolled-back transaction
enqueues nothing. Both databases; django-q2 runs in sync mode here, so an enqueue runs the task."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.models import OrmQ, Schedule, Task

from activations.local_destination import LocalDestination
from activations.models import SyncRecord, SyncRun
from activations.syncs import sync_run_start
from activations.tasks import activations_tick_task
from profiles.ingest import IncomingEvent, raw_events_store
from profiles.models import Event, RawEvent
from profiles.sources import source_create
from tests.faults.conftest import gold_sync, webhook_event

pytestmark = pytest.mark.django_db


def _crash_after_commit(django_capture_on_commit_callbacks, work):
    """Run `work` in a transaction that commits, then lose its on-commit callbacks (the process died)."""
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        with transaction.atomic():
            work()
    return [callback.__name__ for callback in callbacks]


def _run_schedule(name):
    """What the cluster's scheduler does when the schedule is due: call its function."""
    schedule = Schedule.objects.get(name=name)
    return import_string(schedule.func)()


def test_raw_events_committed_without_their_nudge_are_processed_by_the_sweeper(
    django_capture_on_commit_callbacks, settings
):
    source, _ = source_create(name="Crash hooks", kind="standard_webhook")
    incoming = [IncomingEvent(external_id=f"evt-{n}", payload=webhook_event(f"c{n}@example.com")) for n in range(3)]
    lost = _crash_after_commit(
        django_capture_on_commit_callbacks, lambda: raw_events_store(source=source, events=incoming)
    )
    assert lost == ["enqueue_processing"]  # the nudge that never ran
    assert RawEvent.objects.filter(status=RawEvent.PENDING).count() == 3
    assert not OrmQ.objects.exists() and not Task.objects.exists()

    # Before SWEEPER_PENDING_AFTER_SECONDS the sweeper leaves them to a nudge; after, it claims them.
    assert _run_schedule("raw_events_sweep")["claimed"] == 0
    RawEvent.objects.update(received_at=timezone.now() - timedelta(seconds=settings.SWEEPER_PENDING_AFTER_SECONDS + 1))
    result = _run_schedule("raw_events_sweep")
    assert (result["claimed"], result["processed"]) == (3, 3)
    assert RawEvent.objects.filter(status=RawEvent.PROCESSED, attempts=1).count() == 3
    assert Event.objects.count() == 3


def test_a_sync_run_committed_without_its_task_is_started_by_the_tick(django_capture_on_commit_callbacks):
    with LocalDestination() as server:
        sync = gold_sync(server.url, "crash", people=3)
        runs = []
        lost = _crash_after_commit(
            django_capture_on_commit_callbacks,
            lambda: runs.append(sync_run_start(sync=sync, triggered_by="test")),
        )
        assert lost == ["<lambda>"] and not Task.objects.exists()
        run = runs[0]
        assert SyncRun.objects.get(pk=run.pk).status == SyncRun.PENDING

        assert activations_tick_task()["resumed"] == []  # a fresh run may still get its task
        SyncRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(minutes=2))
        assert activations_tick_task()["resumed"] == [run.pk]  # the task runs at once (sync mode)

        run.refresh_from_db()
        assert (run.status, run.applied) == (SyncRun.COMPLETED, 3)
        assert len(server.requests) == 3
        assert SyncRecord.objects.filter(run=run, attempts=1, status="applied").count() == 3


def test_a_rolled_back_transaction_enqueues_nothing(django_capture_on_commit_callbacks):
    source, _ = source_create(name="Rollback hooks", kind="standard_webhook")
    with LocalDestination() as server:
        sync = gold_sync(server.url, "rollback", people=1)
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            with pytest.raises(RuntimeError), transaction.atomic():
                raw_events_store(
                    source=source, events=[IncomingEvent(external_id="gone", payload=webhook_event("r@example.com"))]
                )
                sync_run_start(sync=sync, triggered_by="test")
                raise RuntimeError("the request failed after both writes")
        assert callbacks == []
        assert not RawEvent.objects.filter(external_id="gone").exists()
        assert not SyncRun.objects.exists()
        assert not OrmQ.objects.exists() and not Task.objects.exists()
        assert server.requests == []

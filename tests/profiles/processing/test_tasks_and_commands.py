from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_q.models import OrmQ, Schedule

from profiles.ingest import IncomingEvent, raw_events_store
from profiles.models import Event, RawEvent
from profiles.processing import raw_events_sweep
from tests.profiles.processing.conftest import event

pytestmark = pytest.mark.django_db


def test_storing_enqueues_processing_on_commit(canonical_source, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        raw_events_store(
            source=canonical_source,
            events=[IncomingEvent(external_id="m1", payload={"events": [event(ids=[("user_id", "t")])]})],
        )
    # Storing registers one callback, the processing nudge; q2 runs in sync mode under test settings,
    # so the nudge processed the row already, and processing registered its own segment nudge.
    assert [callback.__name__ for callback in callbacks] == ["enqueue_processing", "reevaluate"]
    assert RawEvent.objects.get().status == RawEvent.PROCESSED
    assert Event.objects.count() == 1


def test_a_rolled_back_transaction_enqueues_nothing(canonical_source, django_capture_on_commit_callbacks):
    from django.db import transaction

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            raw_events_store(source=canonical_source, events=[IncomingEvent(external_id="m2", payload={"events": []})])
            raise RuntimeError("request failed after storing")
    assert callbacks == []
    assert not RawEvent.objects.exists()
    assert not OrmQ.objects.exists()


def test_redelivery_stores_one_row(canonical_source):
    for _ in range(3):
        raw_events_store(source=canonical_source, events=[IncomingEvent(external_id="same", payload={"events": []})])
    assert RawEvent.objects.filter(external_id="same").count() == 1


def test_sweeper_claims_only_rows_pending_for_too_long(send, settings):
    settings.SWEEPER_PENDING_AFTER_SECONDS = 60
    # A lost task: the row committed, its nudge never ran.
    stale = send(event(ids=[("user_id", "s1")]))
    RawEvent.objects.filter(pk=stale.pk).update(received_at=timezone.now() - timedelta(minutes=5))
    fresh = send(event(ids=[("user_id", "s2")]))
    RawEvent.objects.filter(pk=fresh.pk).update(received_at=timezone.now())

    result = raw_events_sweep()

    assert result.processed == 1
    assert RawEvent.objects.get(pk=stale.pk).status == RawEvent.PROCESSED
    assert RawEvent.objects.get(pk=fresh.pk).status == RawEvent.PENDING


def test_sweeper_schedule_exists():
    schedule = Schedule.objects.get(name="raw_events_sweep")
    assert schedule.func == "profiles.tasks.raw_events_sweep_task"
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (Schedule.MINUTES, 1, -1)


def test_process_events_command(send, capsys):
    send(event(ids=[("user_id", "cmd")]))
    call_command("process_events")
    assert "processed 1" in capsys.readouterr().out
    assert RawEvent.objects.get().status == RawEvent.PROCESSED


def test_replay_events_command_filters_and_replays(send, canonical_source, capsys):
    from profiles.models import EventContract

    bad = send(event("payment.succeeded", ids=[("user_id", "rp")], properties={"payment_id": "x"}))
    call_command("process_events")
    assert RawEvent.objects.get(pk=bad.pk).status == RawEvent.QUARANTINED

    call_command("replay_events", "--dry-run", "--source", canonical_source.slug)
    assert "would replay 1" in capsys.readouterr().out
    assert RawEvent.objects.get(pk=bad.pk).status == RawEvent.QUARANTINED

    EventContract.objects.filter(event_type="payment.succeeded").update(required={"payment_id": "string"})
    call_command("replay_events", "--status", "quarantined")
    assert "1 processed" in capsys.readouterr().out
    assert RawEvent.objects.get(pk=bad.pk).status == RawEvent.PROCESSED


def test_replay_events_rejects_unknown_source():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no source"):
        call_command("replay_events", "--source", "nope")

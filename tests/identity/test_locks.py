"""A deadlock rolls a whole transaction back, so processing runs it again instead of failing."""

import psycopg
import pytest
from django.db import OperationalError

from identity.locks import is_deadlock
from profiles import processing
from profiles.models import Event, RawEvent
from tests.profiles.processing.conftest import event


def _deadlock() -> OperationalError:
    try:
        try:
            raise psycopg.errors.DeadlockDetected("deadlock detected")
        except psycopg.Error as cause:
            raise OperationalError("deadlock detected") from cause
    except OperationalError as error:
        return error


def test_is_deadlock_reads_the_sqlstate_of_the_driver_error():
    assert is_deadlock(_deadlock())
    assert not is_deadlock(OperationalError("connection refused"))


@pytest.mark.django_db
def test_a_deadlocked_event_is_retried_not_failed(send, monkeypatch):
    raw = send(event("page.viewed", ids=[("email", "ada@example.com")]))
    real_apply, calls = processing._apply, []

    def deadlock_once(raws):
        calls.append(len(raws))
        if len(calls) == 1:
            raise _deadlock()
        return real_apply(raws)

    monkeypatch.setattr(processing, "_apply", deadlock_once)
    assert processing._process_single(raw.pk).processed == 1
    raw.refresh_from_db()
    assert raw.status == RawEvent.PROCESSED and Event.objects.count() == 1 and calls == [1, 1]

import threading

import pytest
from django.db import connection, connections

from profiles.models import Event, RawEvent
from profiles.processing import raw_events_process
from tests.identity.invariants import identity_invariant_violations
from tests.profiles.processing.conftest import event


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_workers_at_once_apply_every_event_exactly_once(send):
    if connection.vendor != "postgresql":
        pytest.skip("row locks (SKIP LOCKED) are what is under test; SQLite serialises writers")
    for n in range(600):
        person = n % 40
        send(event("page.viewed", ids=[("user_id", f"w{person}"), ("email", f"w{person % 25}@example.com")]))

    results, errors = [], []

    def worker():
        try:
            results.append(raw_events_process(batch_size=50))
        except Exception as error:  # surfaced below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert sum(r.processed for r in results) == 600
    assert RawEvent.objects.filter(status=RawEvent.PROCESSED).count() == 600
    assert Event.objects.count() == 600
    assert Event.objects.values("raw_event").distinct().count() == 600
    assert identity_invariant_violations() == []

"""Delivery under a destination's faults (issue 8), beside what test_syncs.py already holds (a 429
with Retry-After: 1, a 4xx failing one record, parking after max_attempts and replay through the
service): a 429 with Retry-After: 30 holds every request for 30 s, measured on an injected clock; one
record of a batch of 100 rejected transiently is the only one sent again; a parked record is listed
with its reason by the API and replayed from it."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db.models import Value
from django.utils import timezone

from activations import delivery, syncs
from activations.destinations import destination_save
from activations.local_destination import LocalDestination, Reply
from activations.models import Destination, SyncRecord
from activations.syncs import sync_run_execute, sync_run_start
from profiles.processing import raw_events_process
from tests.activations.vendors import salesforce_responder

pytestmark = pytest.mark.django_db


def run_sync(sync):
    run = sync_run_start(sync=sync, triggered_by="test", enqueue=False)
    return sync_run_execute(run.pk)


def gold_people(send, count):
    """`count` consenting gold-plan people, processed in one batch."""
    at = timezone.now().isoformat()
    for n in range(count):
        send(
            {
                "type": "profile.identified",
                "at": at,
                "ids": [["email", f"p{n}@example.com"]],
                "traits": {"plan": "gold"},
                "consent": [["email_marketing", True]],
                "properties": {},
            }
        )
    assert raw_events_process().processed == count


class Clock:
    """Monotonic time, sleeps, timezone.now() and the database's clock (as delivery reads it for
    send slots and pauses) that move only when someone sleeps."""

    def __init__(self):
        import time

        self.real_monotonic, self.real_now, self.offset = time.monotonic, timezone.now, 0.0
        self.sleeps = []

    def monotonic(self):
        return self.real_monotonic() + self.offset

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.offset += seconds

    def now(self):
        return self.real_now() + timedelta(seconds=self.offset)


@pytest.fixture
def clock(monkeypatch):
    import time

    clock = Clock()
    fake_time = SimpleNamespace(monotonic=clock.monotonic, sleep=clock.sleep, perf_counter=time.perf_counter)
    monkeypatch.setattr(delivery, "time", fake_time)
    monkeypatch.setattr(syncs, "time", fake_time)
    monkeypatch.setattr(timezone, "now", clock.now)
    monkeypatch.setattr(delivery, "Now", lambda: Value(clock.now()))
    return clock


def test_a_429_with_retry_after_30_means_nothing_is_sent_for_30_seconds(
    send, audience, webhook_destination, make_sync, clock
):
    gold_people(send, 3)
    arrivals = []  # (injected clock, status answered)

    def responder(received):
        status = 429 if not arrivals else 200
        arrivals.append((clock.now(), status))
        if status == 429:
            return Reply(429, {"error": "slow down"}, {"Retry-After": "30"})
        return Reply(200, {"ok": True})

    with LocalDestination(responder) as server:
        destination = webhook_destination(server.url)
        run = run_sync(make_sync(audience(), destination))
        assert run.status == "completed", run.error

    limited_at = arrivals[0][0]
    assert [status for _, status in arrivals] == [429, 200, 200, 200]
    # Every request after the 429 waited out the whole Retry-After, on the clock the code reads.
    assert all(at - limited_at >= timedelta(seconds=30) for at, _ in arrivals[1:])
    assert max(clock.sleeps) >= 29.9 and sum(clock.sleeps) < 40
    # The pause is in the database, where every worker and trigger sender reads it.
    paused_until = Destination.objects.get(pk=destination.pk).paused_until
    assert timedelta(seconds=29) < paused_until - limited_at <= timedelta(seconds=31)
    records = SyncRecord.objects.filter(run=run)
    assert sorted(records.values_list("attempts", flat=True)) == [1, 1, 1]  # the 429 did not count
    assert set(records.values_list("status", flat=True)) == {"applied"}
    assert len(server.requests) == 4


def test_a_429_pause_holds_other_senders_of_the_destination(send, audience, webhook_destination, make_sync, clock):
    """A trigger or another worker sending during the pause waits for it too (Destination.paused_until)."""
    gold_people(send, 1)
    with LocalDestination() as server:
        destination = webhook_destination(server.url)
        Destination.objects.filter(pk=destination.pk).update(paused_until=clock.now() + timedelta(seconds=30))
        started = clock.now()
        assert delivery.wait_for_destination(destination, longest_wait=60) is None
        assert clock.now() - started >= timedelta(seconds=29.9)
        assert server.requests == []


def test_one_record_of_100_rejected_transiently_is_the_only_one_sent_again(send, audience, make_sync, monkeypatch):
    gold_people(send, 100)
    monkeypatch.setattr(delivery, "BACKOFF_BASE_SECONDS", 0.01)
    first = salesforce_responder(fail_keys={"p7@example.com"}, error_code="UNABLE_TO_LOCK_ROW", access_token="t")
    later = salesforce_responder(access_token="t")
    answered = []

    def responder(received):
        answered.append(received)
        return (first if len(answered) == 1 else later)(received)

    with LocalDestination(responder) as server:
        destination = destination_save(
            secrets={"access_token": "t"},
            name="Salesforce",
            slug="salesforce",
            kind="salesforce",
            base_url=server.url,
            settings={"external_id_field": "CDP_Email__c"},
            fields=[{"name": "email", "source": "identifier:email"}, {"name": "plan", "source": "trait:plan"}],
            idempotency_key="email",
            operations=["upsert", "delete"],
            consent_purpose="email_marketing",
            pii_mode="cleartext",
            rate_limit_per_second=1000,
            batch_size=100,
            max_attempts=3,
        )
        run = run_sync(make_sync(audience(), destination))

    assert (run.planned, run.applied, run.failed, run.requests) == (100, 100, 0, 2)
    sent = [[record["CDP_Email__c"] for record in request.json["records"]] for request in server.requests]
    assert [len(batch) for batch in sent] == [100, 1]
    assert sent[1] == ["p7@example.com"]
    attempts = dict(SyncRecord.objects.filter(run=run).values_list("key", "attempts"))
    assert attempts.pop("p7@example.com") == 2
    assert set(attempts.values()) == {1}


def test_a_record_that_keeps_failing_is_parked_then_listed_and_replayed_through_the_api(
    api, send, audience, webhook_destination, make_sync, monkeypatch, django_capture_on_commit_callbacks
):
    gold_people(send, 2)
    monkeypatch.setattr(delivery, "BACKOFF_BASE_SECONDS", 0.01)
    healthy = {"value": False}

    def responder(received):
        if healthy["value"] or "p0@" not in received.body.decode():
            return Reply(200, {})
        return Reply(503, {"error": "backend down"})

    with LocalDestination(responder) as server:
        run = run_sync(make_sync(audience(), webhook_destination(server.url, max_attempts=4)))
        assert (run.status, run.applied, run.failed) == ("completed", 1, 1)
        assert sum("p0@" in request.body.decode() for request in server.requests) == 4  # then parked

        client = api("integration_engineer")
        [parked] = client.get(f"/api/v1/sync-runs/{run.pk}/records/", {"status": "failed"}).json()["results"]
        assert (parked["attempts"], parked["status_code"]) == (4, 503)
        assert parked["error"].startswith("gave up after 4 attempts")

        healthy["value"] = True
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(f"/api/v1/sync-runs/{run.pk}/retry-failed/")
        assert response.json()["queued"] == 1
        run.refresh_from_db()
        assert (run.status, run.applied, run.failed) == ("completed", 2, 0)
        assert sum("p0@" in request.body.decode() for request in server.requests) == 5

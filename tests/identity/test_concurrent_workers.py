"""Several django-q2 workers resolve overlapping identities at once on PostgreSQL while a
reviewer unmerges: every raw event is applied exactly once, no task fails (a deadlock would), and
the identity invariants hold at the end."""

import os
import random
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.db import connection, connections
from django.utils import timezone

from identity.models import Merge
from identity.services import IdentityActionError, merge_unmerge
from profiles.models import Event, RawEvent
from profiles.sources import source_create
from tests.identity.invariants import identity_invariant_violations

ROOT = Path(__file__).resolve().parents[2]


def _segment_messages(count: int, seed: int) -> list[dict]:
    """Identify, track and page calls from people whose ids overlap: a person's user id, an email
    shared by pairs of people, devices reused across people."""
    rng = random.Random(seed)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    messages = []
    for n in range(count):
        person = rng.randrange(60)
        at = (start + timedelta(seconds=n)).isoformat()
        message = {
            "messageId": str(uuid.UUID(int=rng.getrandbits(128))),
            "anonymousId": f"device-{rng.randrange(90)}",
            "timestamp": at,
            "sentAt": at,
            "receivedAt": at,
            "context": {"library": {"name": "analytics-python", "version": "2.4.0"}},
        }
        kind = rng.random()
        if kind < 0.4:
            message.update(
                type="identify",
                userId=f"user-{person}",
                traits={"email": f"person{person // 2}@example.com", "first_name": f"P{person}"},
            )
        elif kind < 0.7:
            message.update(type="track", userId=f"user-{person}", event="Class Booked", properties={"class": "yoga"})
        else:
            message.update(type="page", name="Home", properties={"path": "/"})
        messages.append(message)
    return messages


def _database_url() -> str:
    settings = connection.settings_dict
    password = f":{settings['PASSWORD']}" if settings.get("PASSWORD") else ""
    return f"postgres://{settings['USER']}{password}@{settings['HOST']}:{settings['PORT'] or 5432}/{settings['NAME']}"


def _manage(*args, env) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_several_q2_workers_and_unmerges_at_once_keep_the_invariants():
    if connection.vendor != "postgresql":
        pytest.skip("concurrent workers on real PostgreSQL are what is under test")
    source, _ = source_create(name="App", kind="tracking")
    messages = _segment_messages(1200, seed=7)
    connections.close_all()
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "DJANGO_SETTINGS_MODULE": "cdp_site.settings",
        "Q_WORKERS": "3",
        "PROCESSING_BATCH_SIZE": "20",
        "PROCESSING_LINGER_SECONDS": "5",
    }
    env.pop("REDIS_URL", None)  # the ORM broker: the cluster shares the test database
    cluster = _manage("qcluster", env=env)
    unmerged = 0
    try:
        # Three tasks at once on three workers, each claiming batches with SKIP LOCKED.
        enqueue = _manage(
            "shell",
            "-c",
            "from django_q.tasks import async_task\n"
            "for _ in range(3): async_task('profiles.tasks.raw_events_process_task')",
            env=env,
        )
        assert enqueue.wait(timeout=60) == 0, enqueue.stdout.read()
        deadline = time.monotonic() + 180
        pending_messages = list(messages)
        while pending_messages or RawEvent.objects.filter(status=RawEvent.PENDING).exists():
            assert time.monotonic() < deadline, "workers did not drain the queue in time"
            # Events keep arriving (stored as the request path stores them, without a nudge: the
            # three lingering tasks pick them up) ...
            chunk, pending_messages = pending_messages[:60], pending_messages[60:]
            RawEvent.objects.bulk_create(
                [
                    RawEvent(
                        source=source,
                        external_id=m["messageId"],
                        topic=m["type"],
                        received_at=timezone.now(),
                        payload=m,
                    )
                    for m in chunk
                ]
            )
            # ... while a reviewer undoes merges of the same people.
            merge = Merge.objects.filter(unmerged_at__isnull=True).order_by("?").first()
            if merge is not None:
                try:
                    merge_unmerge(merge_id=merge.pk, actor="user:reviewer", reason="concurrency test")
                    unmerged += 1
                except IdentityActionError:
                    pass
            time.sleep(0.1)
    finally:
        cluster.terminate()
        output = cluster.communicate(timeout=60)[0]

    from django_q.models import Task

    failed = list(Task.objects.filter(success=False).values_list("name", "result"))
    assert failed == [], output[-3000:]
    assert RawEvent.objects.filter(status__in=[RawEvent.FAILED, RawEvent.QUARANTINED]).count() == 0
    assert RawEvent.objects.filter(status=RawEvent.PROCESSED).count() == 1200
    assert Event.objects.count() == 1200
    assert Event.objects.values("raw_event").distinct().count() == 1200
    assert Merge.objects.exists() and unmerged > 0
    assert identity_invariant_violations() == []

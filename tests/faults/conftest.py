"""Fault injection: real `manage.py qcluster` processes against the test database, killed with
SIGKILL at chosen moments. PostgreSQL only (row locks, advisory locks, several processes)."""

import contextlib
import itertools
import os
import socket

import pytest
from django.db import connection, connections
from django.utils import timezone

from profiles.loadtest import claim_redis_database, manage_env, release_redis_database
from profiles.models import RawEvent

_ids = itertools.count(1)


def database_url() -> str:
    settings = connection.settings_dict
    password = f":{settings['PASSWORD']}" if settings.get("PASSWORD") else ""
    host, port = settings["HOST"] or "127.0.0.1", settings["PORT"] or 5432
    return f"postgres://{settings['USER']}{password}@{host}:{port}/{settings['NAME']}"


@pytest.fixture
def postgres_only(transactional_db):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: worker processes share the database with row and advisory locks")


@pytest.fixture
def child_env(postgres_only):
    """Environment of a worker process on the test database: the sweeper claims rows pending for
    more than a second, so a test needs not wait a minute."""
    connections.close_all()  # the children must not inherit a half-used connection
    return manage_env(database_url(), SWEEPER_PENDING_AFTER_SECONDS="1", PROCESSING_LINGER_SECONDS="1")


@pytest.fixture
def redis_url():
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=2).close()
    except OSError:
        pytest.skip("Redis does not answer on 127.0.0.1:6379")
    url = claim_redis_database()
    yield url
    release_redis_database(url)


@pytest.fixture
def clusters():
    """Start clusters with clusters(env, workers=n); every one is stopped and its log removed after."""
    from profiles.loadtest import Cluster

    started = []

    def start(env, *, workers=1):
        cluster = Cluster(env, workers=workers).start()
        started.append(cluster)
        return cluster

    yield start
    for cluster in started:
        with contextlib.suppress(Exception):
            cluster.close(grace=0.5)


def webhook_event(email, *, event_type="profile.identified", traits=None, consent=None, at=None) -> dict:
    """A Standard Webhooks envelope (profiles/mappers/standard_webhooks.py)."""
    return {
        "type": event_type,
        "timestamp": (at or timezone.now()).isoformat(),
        "data": {"identifiers": {"email": email}, "traits": traits or {}, "consent": consent or {}},
    }


def store_pending(source, payloads, *, received_at=None) -> list[int]:
    """Raw events as the request path leaves them (pending), without a nudge."""
    rows = RawEvent.objects.bulk_create(
        [
            RawEvent(
                source=source,
                external_id=f"fault-{os.getpid()}-{next(_ids)}",
                topic=payload.get("type", ""),
                received_at=received_at or timezone.now(),
                payload=payload,
            )
            for payload in payloads
        ]
    )
    return [row.pk for row in rows]


def gold_sync(url: str, tag: str, *, people: int):
    """`people` consenting gold-plan people (processed), their segment, a webhook destination at
    `url` sending one record per request, and an upsert sync between them."""
    from activations.destinations import destination_save
    from activations.models import Sync
    from profiles.processing import raw_events_process
    from profiles.sources import source_create
    from segments.membership import segment_membership_refresh
    from segments.services import segment_create

    source, _ = source_create(name=f"Sync kill {tag}", kind="standard_webhook")
    store_pending(
        source,
        [
            webhook_event(f"s{n}@example.com", traits={"plan": "gold"}, consent={"email_marketing": True})
            for n in range(people)
        ],
    )
    raw_events_process()
    segment = segment_create(
        slug=f"kill-{tag}",
        name="Gold",
        definition={"all": [{"trait": "plan", "op": "eq", "value": "gold"}]},
        note="test",
        author="test",
    )
    segment_membership_refresh(segment=segment)
    destination = destination_save(
        secrets={"signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
        name="Receiver",
        slug=f"receiver-{tag}",
        kind="webhook",
        base_url=url,
        fields=[{"name": "email", "source": "identifier:email"}, {"name": "plan", "source": "trait:plan"}],
        idempotency_key="email",
        operations=["upsert", "update", "remove", "delete"],
        consent_purpose="email_marketing",
        pii_mode="cleartext",
        rate_limit_per_second=1000,
        batch_size=1,
        max_attempts=3,
        timeout_seconds=30,
    )
    return Sync.objects.create(name="Gold", slug=f"gold-{tag}", segment=segment, destination=destination, mode="upsert")

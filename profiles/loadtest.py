"""Load test on loopback: concurrent senders on /v1/batch and a signed webhook endpoint for a fixed
time, while django-q2 workers process; then count raw events in and events out.

Everything runs as real processes: gunicorn serves the endpoints, `manage.py qcluster` processes
(ORM broker, or Redis with `broker="redis"`), and the senders are threads of this process, each
with its own keep-alive connection, behaving like SDKs and webhook senders: a 429, 5xx or a
connection error is retried with the same body after `Retry-After`, and a share of requests are
deliberate redeliveries (the same messageIds, the same `webhook-id`) that must be stored once.

What is checked, from the database and the senders' own records:
- lost: ids a sender had a 2xx for that are not stored as raw events;
- duplicated: raw events with more events than their payload holds (one per message here);
- unprocessed: raw events still pending, failed or quarantined after the drain;
- 5xx: any answer of 500 or above.

`manage.py loadtest` runs it against a scratch database; tests/faults/test_load.py runs it against
the test database, smaller.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from profiles.benchmark import _free_port, _wait_for, as_url

ROOT = Path(__file__).resolve().parent.parent
REDIS_LOCK_KEY = "cdp:loadtest:claimed"


# -- processes --------------------------------------------------------------------------------------


def manage_env(database_url: str, **extra: str) -> dict:
    """Environment of a child process on `database_url` with production-like settings (no sync q2)."""
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "cdp_site.settings"}
    env.update({"DEBUG": "0", "LOG_LEVEL": "WARNING"})
    env.pop("REDIS_URL", None)  # the ORM broker unless the caller says otherwise
    env.update(extra)
    return env


def manage(*args: str, env: dict, timeout: float = 300) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def enqueue(func: str, *args: int | str, env: dict, times: int = 1) -> None:
    """Put a task on the configured broker (`times` copies), as the request path or the scheduler would."""
    call = f"async_task({func!r}, {', '.join(repr(arg) for arg in args)})"
    manage("shell", "-c", f"from django_q.tasks import async_task\nfor _ in range({times}): {call}", env=env)


class Cluster:
    """`manage.py qcluster` in its own process group, so it can be killed like a machine dying."""

    def __init__(self, env: dict, *, workers: int = 1):
        self.env = {**env, "Q_WORKERS": str(workers)}
        self.log = tempfile.NamedTemporaryFile(prefix="qcluster-", suffix=".log", delete=False)  # noqa: SIM115
        self.process: subprocess.Popen | None = None

    def start(self) -> Cluster:
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def kill(self) -> None:
        """SIGKILL the sentinel and every worker at once: no cleanup, no rollback by the process."""
        self._signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, grace: float = 5) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds: our tables hold the work, so a worker that
        does not stop in time loses nothing (django-q2 waits for lingering tasks to end)."""
        if self.process is None or self.process.poll() is not None:
            return
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill()

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-5000:]

    def close(self, grace: float = 5) -> None:
        self.stop(grace)
        self.log.close()
        with contextlib.suppress(OSError):
            os.unlink(self.log.name)

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)


class Server:
    """gunicorn serving the project on a free loopback port."""

    def __init__(self, env: dict, *, workers: int = 3, threads: int = 4):
        self.env, self.workers, self.threads = env, workers, threads
        self.port = _free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> Server:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "cdp_site.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(self.workers),
                "--worker-class",
                "gthread",
                "--threads",
                str(self.threads),
                "--keep-alive",
                "30",
                "--backlog",
                "512",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=self.env,
        )
        _wait_for(self.port)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def claim_redis_database(host: str = "127.0.0.1", port: int = 6379, *, seconds: int = 900) -> str:
    """A Redis URL on a database nobody else uses now: the first empty one of 1..15 whose claim
    key this caller sets (the cluster name is fixed, so parallel runs must not share a database)."""
    import redis

    for number in range(1, 16):
        client = redis.Redis(host=host, port=port, db=number)
        try:
            if client.dbsize() == 0 and client.set(REDIS_LOCK_KEY, str(os.getpid()), nx=True, ex=seconds):
                return f"redis://{host}:{port}/{number}"
        finally:
            client.close()
    raise RuntimeError("no free Redis database among 1..15")


def release_redis_database(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()  # a database claimed empty: everything in it is ours
    finally:
        client.close()


def wait_until(predicate, *, timeout: float, interval: float = 0.2, message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {message}")
        time.sleep(interval)


# -- senders ----------------------------------------------------------------------------------------


@dataclass
class Plan:
    senders: int = 50
    duration: float = 60.0
    batch: int = 10  # messages per /v1/batch request
    webhook_share: float = 0.3  # of requests, to the Standard Webhooks endpoint
    resend_share: float = 0.05  # of requests, a redelivery of an earlier one (same ids)
    pause: float = 0.25  # seconds a sender waits between requests (SDKs flush on a timer)
    people: int = 5000
    seed: int = 7


@dataclass
class SenderTally:
    requests: int = 0
    statuses: Counter = field(default_factory=Counter)  # "2xx", "4xx", "5xx", "connection error"
    codes: Counter = field(default_factory=Counter)
    tracking_acked: set = field(default_factory=set)  # messageIds the server acknowledged
    webhook_acked: set = field(default_factory=set)  # webhook-ids the server acknowledged
    redeliveries: int = 0
    redelivered_events: int = 0
    gave_up: int = 0  # requests never acknowledged after every retry
    latencies: list = field(default_factory=list)


class Sender(threading.Thread):
    MAX_TRIES = 6

    def __init__(self, index: int, *, plan: Plan, port: int, auth: str, webhook: tuple[str, str], deadline: float):
        super().__init__(name=f"sender-{index}", daemon=True)
        self.index, self.plan, self.port, self.auth = index, plan, port, auth
        self.webhook_path, self.webhook_key = webhook[0], _standard_key(webhook[1])
        self.deadline = deadline
        self.rng = random.Random(plan.seed * 1000 + index)
        self.tally = SenderTally()
        self.sent: list[tuple[str, object]] = []  # what a redelivery may repeat
        self.counter = 0
        self.connection: http.client.HTTPConnection | None = None

    def run(self) -> None:
        try:
            while time.monotonic() < self.deadline:
                if self.sent and self.rng.random() < self.plan.resend_share:
                    kind, item = self.rng.choice(self.sent)
                    self.tally.redeliveries += 1
                    self.tally.redelivered_events += len(item) if kind == "batch" else 1
                else:
                    kind = "webhook" if self.rng.random() < self.plan.webhook_share else "batch"
                    item = self._messages() if kind == "batch" else self._webhook_event()
                    self.sent.append((kind, item))
                if self._deliver(kind, item):
                    if kind == "batch":
                        self.tally.tracking_acked.update(message["messageId"] for message in item)
                    else:
                        self.tally.webhook_acked.add(item["id"])
                if self.plan.pause:
                    time.sleep(self.plan.pause)
        finally:
            if self.connection is not None:
                self.connection.close()

    def _next_id(self) -> str:
        self.counter += 1
        return f"lt-{self.plan.seed}-{self.index}-{self.counter}"

    def _person(self) -> int:
        return self.rng.randrange(self.plan.people)

    def _messages(self) -> list[dict]:
        now = datetime.now(UTC)
        messages = []
        for _ in range(self.plan.batch):
            person, at = self._person(), (now - timedelta(seconds=self.rng.randrange(600))).isoformat()
            common = {"messageId": self._next_id(), "anonymousId": f"device-{person}", "timestamp": at, "sentAt": at}
            kind = self.rng.random()
            if kind < 0.15:
                messages.append(
                    {
                        **common,
                        "type": "identify",
                        "userId": f"user-{person}",
                        "traits": {"email": f"person{person}@example.com", "plan": "gold"},
                    }
                )
            elif kind < 0.6:
                messages.append({**common, "type": "page", "name": "Schedule", "properties": {"path": "/classes"}})
            else:
                messages.append(
                    {
                        **common,
                        "type": "track",
                        "userId": f"user-{person}",
                        "event": "Class Booked",
                        "properties": {"class": "yoga"},
                    }
                )
        return messages

    def _webhook_event(self) -> dict:
        person = self._person()
        order = self._next_id()
        body = {
            "type": "order.completed",
            "timestamp": datetime.now(UTC).isoformat(),
            "data": {
                "identifiers": {"email": f"person{person}@example.com"},
                "properties": {"order_id": order, "total": 25.0, "currency": "EUR"},
                "revenue": 25.0,
                "currency": "EUR",
            },
        }
        return {"id": f"msg_{order}", "body": json.dumps(body).encode()}

    def _request(self, kind: str, item) -> tuple[str, bytes, dict]:
        if kind == "batch":
            headers = {"Content-Type": "application/json", "Authorization": self.auth}
            return "/v1/batch", json.dumps({"batch": item}).encode(), headers
        # A redelivery keeps its webhook-id and is signed again with a fresh timestamp, as senders do.
        timestamp = str(int(time.time()))
        signed = f"{item['id']}.{timestamp}.".encode() + item["body"]
        signature = base64.b64encode(hmac.new(self.webhook_key, signed, hashlib.sha256).digest()).decode()
        headers = {
            "Content-Type": "application/json",
            "webhook-id": item["id"],
            "webhook-timestamp": timestamp,
            "webhook-signature": f"v1,{signature}",
        }
        return self.webhook_path, item["body"], headers

    def _deliver(self, kind: str, item) -> bool:
        """True once the server acknowledged with a 2xx; retries like an SDK (429, 5xx, no answer)."""
        for _ in range(self.MAX_TRIES):
            path, body, headers = self._request(kind, item)
            self.tally.requests += 1
            started = time.perf_counter()
            try:
                if self.connection is None:
                    self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                self.connection.request("POST", path, body=body, headers=headers)
                response = self.connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                self.tally.statuses["connection error"] += 1
                self.connection.close()
                self.connection = None
                time.sleep(0.5)
                continue
            self.tally.latencies.append(time.perf_counter() - started)
            self.tally.codes[response.status] += 1
            self.tally.statuses[f"{response.status // 100}xx"] += 1
            if 200 <= response.status < 300:
                return True
            if response.status == 429 or response.status >= 500:
                time.sleep(_retry_after(response.getheader("Retry-After")))
                continue
            break  # another 4xx: the sender's fault, not retried
        self.tally.gave_up += 1
        return False


def _retry_after(value: str | None) -> float:
    try:
        return min(max(float(value), 0.0), 5.0) if value else 0.5
    except ValueError:
        return 0.5


def _standard_key(secret: str) -> bytes:
    encoded = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(encoded, validate=True)
    except ValueError:
        return encoded.encode()


# -- the run ----------------------------------------------------------------------------------------


@dataclass
class Report:
    senders: int
    duration: float
    broker: str
    workers: int
    requests: int = 0
    statuses: dict = field(default_factory=dict)
    codes: dict = field(default_factory=dict)
    gave_up: int = 0
    events_acked: int = 0  # unique events the senders had a 2xx for
    redeliveries: int = 0
    redelivered_events: int = 0
    raw_stored: int = 0
    lost: int = 0
    unexpected: int = 0  # stored ids no sender ever sent
    raw_by_status: dict = field(default_factory=dict)
    events_out: int = 0
    events_expected: int = 0
    duplicated: int = 0  # raw events with more events than their payload holds
    missing_events: int = 0  # processed raw events without their event
    reprocessed: int = 0  # raw events whose processing committed more than once
    processed_during_load: int = 0
    accepted_per_second: float = 0.0
    processed_per_second: float = 0.0
    drain_seconds: float = 0.0
    latency_p50_ms: float = 0.0
    latency_p95_ms: float = 0.0

    @property
    def five_xx(self) -> int:
        return self.statuses.get("5xx", 0)

    @property
    def unprocessed(self) -> int:
        return sum(n for status, n in self.raw_by_status.items() if status != "processed")

    @property
    def ok(self) -> bool:
        return not (
            self.five_xx
            or self.lost
            or self.unexpected
            or self.duplicated
            or self.missing_events
            or self.unprocessed
            or self.events_out != self.events_expected
        )

    def lines(self) -> list[str]:
        statuses = ", ".join(f"{name} {count:,}" for name, count in sorted(self.statuses.items()))
        return [
            f"load: {self.senders} senders for {self.duration:g} s; {self.workers} worker process(es), "
            f"{self.broker} broker",
            f"requests                       {self.requests:>10,}  ({statuses})",
            f"latency p50 / p95              {self.latency_p50_ms:>10,.1f}  / {self.latency_p95_ms:,.1f} ms",
            f"events acknowledged (unique)   {self.events_acked:>10,}",
            f"redeliveries (same ids)        {self.redeliveries:>10,}  requests, {self.redelivered_events:,} events",
            f"raw events stored              {self.raw_stored:>10,}",
            f"lost (acked, not stored)       {self.lost:>10,}",
            f"stored but never sent          {self.unexpected:>10,}",
            "raw events by status           "
            + ", ".join(f"{status} {n:,}" for status, n in sorted(self.raw_by_status.items())),
            f"events out / expected          {self.events_out:>10,}  / {self.events_expected:,}",
            f"duplicated (raw events)        {self.duplicated:>10,}",
            f"processed more than once       {self.reprocessed:>10,}",
            f"accepted                       {self.accepted_per_second:>10,.0f}  events/s",
            f"processed                      {self.processed_per_second:>10,.0f}  events/s "
            f"(first receipt to last processed; {self.processed_during_load:,} done during the load, "
            f"drained {self.drain_seconds:.1f} s after it)",
            "result: " + ("OK" if self.ok else "FAILED"),
        ]


class LoadTest:
    """Run against `database_url` (migrated). `create_database` makes and drops a scratch one beside it."""

    def __init__(
        self,
        *,
        database_url: str,
        plan: Plan,
        workers: int = 2,
        broker: str = "orm",
        redis_url: str = "",
        server_workers: int = 3,
        server_threads: int = 4,
        create_database: bool = False,
        keep_database: bool = False,
        drain_timeout: float = 900,
        out=print,
    ):
        if broker not in ("orm", "redis"):
            raise ValueError("broker is orm or redis")
        if broker == "redis" and not redis_url:
            raise ValueError("the redis broker needs redis_url")
        self.plan, self.workers, self.broker, self.redis_url = plan, workers, broker, redis_url
        self.server_workers, self.server_threads = server_workers, server_threads
        self.create_database, self.keep_database = create_database, keep_database
        self.drain_timeout, self.out = drain_timeout, out
        info = psycopg.conninfo.conninfo_to_dict(database_url)
        self.admin_url = database_url
        self.db_name = f"{info.get('dbname') or 'cdp'}_loadtest" if create_database else info.get("dbname")
        self.db_url = psycopg.conninfo.make_conninfo(database_url, dbname=self.db_name)
        extra = {"REDIS_URL": redis_url} if broker == "redis" else {}
        self.env = manage_env(as_url(info, self.db_name), **extra)

    def run(self) -> Report:
        if self.create_database:
            self.out(f"scratch database {self.db_name}: creating and migrating")
            self._recreate_database()
        try:
            return self._run()
        finally:
            if self.create_database and not self.keep_database:
                self.drop_database()

    def drop_database(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True, dbname="postgres") as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')

    def _recreate_database(self) -> None:
        self.drop_database()
        with psycopg.connect(self.admin_url, autocommit=True, dbname="postgres") as conn:
            conn.execute(f'CREATE DATABASE "{self.db_name}"')
        manage("migrate", "--noinput", env=self.env, timeout=600)

    def _sources(self) -> tuple[str, tuple[str, str], list[int]]:
        tag = uuid.uuid4().hex[:8]
        tracking = json.loads(manage("create_source", "--kind", "tracking", "--name", f"Load SDK {tag}", env=self.env))
        webhook = json.loads(
            manage("create_source", "--kind", "standard_webhook", "--name", f"Load hooks {tag}", env=self.env)
        )
        auth = "Basic " + base64.b64encode(f"{tracking['write_key']}:".encode()).decode()
        with psycopg.connect(self.db_url) as conn:
            ids = [
                conn.execute("SELECT id FROM profiles_source WHERE slug = %s", [slug]).fetchone()[0]
                for slug in (tracking["slug"], webhook["slug"])
            ]
        return auth, (webhook["webhook_url_path"], webhook["signing_secret"]), ids

    def _run(self) -> Report:
        plan = self.plan
        auth, webhook, source_ids = self._sources()
        report = Report(senders=plan.senders, duration=plan.duration, broker=self.broker, workers=self.workers)
        cluster = Cluster(self.env, workers=self.workers).start()
        server = Server(self.env, workers=self.server_workers, threads=self.server_threads)
        try:
            server.start()
            self.out(f"gunicorn on :{server.port}; {self.workers} q2 workers; {plan.senders} senders")
            started = time.monotonic()
            deadline = started + plan.duration
            senders = [
                Sender(index, plan=plan, port=server.port, auth=auth, webhook=webhook, deadline=deadline)
                for index in range(plan.senders)
            ]
            for sender in senders:
                sender.start()
            for sender in senders:
                sender.join()
            load_seconds = time.monotonic() - started
            report.processed_during_load = self._count("status <> 'pending'", source_ids)
            self.out(f"load done in {load_seconds:.1f} s; waiting for the workers to drain")
            drain_started = time.monotonic()
            wait_until(
                lambda: self._count("status = 'pending'", source_ids) == 0,
                timeout=self.drain_timeout,
                interval=0.5,
                message="the workers to drain the raw events",
            )
            report.drain_seconds = time.monotonic() - drain_started
        finally:
            server.stop()
            cluster.close()
        self._tally(report, senders, load_seconds, source_ids)
        return report

    def _count(self, condition: str, source_ids: list[int]) -> int:
        with psycopg.connect(self.db_url) as conn:
            return conn.execute(
                f"SELECT count(*) FROM profiles_rawevent WHERE source_id = ANY(%s) AND {condition}",  # noqa: S608
                [source_ids],
            ).fetchone()[0]

    def _tally(self, report: Report, senders: list[Sender], load_seconds: float, source_ids: list[int]) -> None:
        statuses, codes, latencies = Counter(), Counter(), []
        tracking_acked, webhook_acked = set(), set()
        for sender in senders:
            tally = sender.tally
            report.requests += tally.requests
            report.gave_up += tally.gave_up
            report.redeliveries += tally.redeliveries
            report.redelivered_events += tally.redelivered_events
            statuses.update(tally.statuses)
            codes.update(tally.codes)
            latencies += tally.latencies
            tracking_acked |= tally.tracking_acked
            webhook_acked |= tally.webhook_acked
        seed = self.plan.seed
        every_id = {f"lt-{seed}-{sender.index}-{n}" for sender in senders for n in range(1, sender.counter + 1)}
        report.statuses, report.codes = dict(statuses), dict(codes)
        report.events_acked = len(tracking_acked) + len(webhook_acked)
        if latencies:
            latencies.sort()
            report.latency_p50_ms = latencies[len(latencies) // 2] * 1000
            report.latency_p95_ms = latencies[int(len(latencies) * 0.95)] * 1000
        tracking_id, webhook_id = source_ids
        with psycopg.connect(self.db_url) as conn:
            stored = conn.execute(
                "SELECT source_id, external_id FROM profiles_rawevent WHERE source_id = ANY(%s)", [source_ids]
            ).fetchall()
            report.raw_by_status = dict(
                conn.execute(
                    "SELECT status, count(*) FROM profiles_rawevent WHERE source_id = ANY(%s) GROUP BY status",
                    [source_ids],
                ).fetchall()
            )
            # One canonical event per message (tracking) and per delivery (Standard Webhooks).
            per_raw = conn.execute(
                "SELECT count(*) FILTER (WHERE n > 1), count(*) FILTER (WHERE n = 0 AND r.status = 'processed'), "
                "coalesce(sum(n), 0), count(*) FILTER (WHERE r.status = 'processed'), "
                "count(*) FILTER (WHERE r.attempts > 1) "
                "FROM profiles_rawevent r LEFT JOIN LATERAL "
                "(SELECT count(*) AS n FROM profiles_event e WHERE e.raw_event_id = r.id) e ON true "
                "WHERE r.source_id = ANY(%s)",
                [source_ids],
            ).fetchone()
            first_received, last_processed = conn.execute(
                "SELECT min(received_at), max(processed_at) FROM profiles_rawevent WHERE source_id = ANY(%s)",
                [source_ids],
            ).fetchone()
        stored_tracking = {external_id for source, external_id in stored if source == tracking_id}
        stored_webhook = {external_id for source, external_id in stored if source == webhook_id}
        report.raw_stored = len(stored)
        report.lost = len(tracking_acked - stored_tracking) + len(webhook_acked - stored_webhook)
        webhook_ids = {external_id.removeprefix("msg_") for external_id in stored_webhook}
        report.unexpected = len(stored_tracking - every_id) + len(webhook_ids - every_id)
        report.duplicated, report.missing_events, report.events_out, processed, report.reprocessed = per_raw
        report.events_expected = processed
        report.accepted_per_second = report.events_acked / load_seconds
        if first_received and last_processed:
            report.processed_per_second = processed / max((last_processed - first_received).total_seconds(), 1e-3)

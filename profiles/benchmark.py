"""Ingestion benchmark: accepted events/s through a real HTTP server, processed events/s with one
worker, and a raw psycopg binary COPY of the same rows as the baseline, all in one run.

Runs against a scratch PostgreSQL database (created, migrated, and dropped), so the figures do not
depend on whatever the configured database already holds.
"""

from __future__ import annotations

import base64
import http.client
import json
import multiprocessing
import os
import random
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Figures:
    accepted_per_second: list[float]
    copy_rows_per_second: list[float]
    processed: list[tuple[int, float, int]]  # (events, events/s, peak RSS in KiB)


def segment_messages(count: int, *, people: int, seed: int) -> list[dict]:
    """Messages like an SDK sends: identify, track and page calls from a pool of people and devices."""
    rng = random.Random(seed)
    base = datetime(2026, 11, 1, tzinfo=UTC)
    messages = []
    for n in range(count):
        person = rng.randrange(people)
        at = (base + timedelta(seconds=n)).isoformat()
        common = {
            "messageId": str(uuid.UUID(int=rng.getrandbits(128))),
            "anonymousId": f"anon-{person}-{rng.randrange(2)}",
            "timestamp": at,
            "sentAt": at,
            "context": {"library": {"name": "analytics-python", "version": "2.4.0"}, "ip": "203.0.113.7"},
        }
        kind = rng.random()
        if kind < 0.15:
            messages.append(
                {
                    **common,
                    "type": "identify",
                    "userId": f"user-{person}",
                    "traits": {"email": f"person{person}@example.com", "firstName": f"Name{person}", "plan": "gold"},
                }
            )
        elif kind < 0.6:
            messages.append(
                {
                    **common,
                    "type": "page",
                    "name": "Class schedule",
                    "properties": {"url": f"https://studio.example/classes/{n % 40}", "path": f"/classes/{n % 40}"},
                }
            )
        else:
            messages.append(
                {
                    **common,
                    "type": "track",
                    "userId": f"user-{person}",
                    "event": "Product Viewed",
                    "properties": {"product_id": f"sku-{n % 300}", "price": 19.5, "currency": "USD"},
                }
            )
    return messages


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server on port {port} did not start")


def _sender(args) -> int:
    port, auth, bodies = args
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    accepted = 0
    for body, count in bodies:
        connection.request(
            "POST", "/v1/batch", body=body, headers={"Content-Type": "application/json", "Authorization": auth}
        )
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"/v1/batch answered {response.status}")
        accepted += count
    connection.close()
    return accepted


class Benchmark:
    def __init__(self, *, database_url: str, out, server_workers: int, senders: int, batch: int):
        self.admin_url = database_url
        self.out = out
        self.server_workers = server_workers
        self.senders = senders
        self.batch = batch
        info = psycopg.conninfo.conninfo_to_dict(database_url)
        self.db_name = f"{info.get('dbname') or 'cdp'}_bench"
        self.bench_url = psycopg.conninfo.make_conninfo(database_url, dbname=self.db_name)
        self.env = {
            **os.environ,
            "DATABASE_URL": as_url(info, self.db_name),
            "DJANGO_SETTINGS_MODULE": "cdp_site.settings",
            # Production-like: with DEBUG on, Django keeps every query in memory.
            "DEBUG": "0",
            "LOG_LEVEL": "WARNING",
        }

    # -- database ------------------------------------------------------------------------

    def _recreate_database(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True, dbname="postgres") as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.db_name}"')
        self._manage("migrate", "--noinput", quiet=True)

    def drop_database(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True, dbname="postgres") as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')

    def _manage(self, *args, quiet=False) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")
        return result.stdout

    def _reset_data(self) -> None:
        with psycopg.connect(self.bench_url, autocommit=True) as conn:
            conn.execute(
                "TRUNCATE profiles_event, profiles_traitvalue, consent_consentrecord, identity_merge, "
                "identity_identitylink, identity_identifier, profiles_profile, profiles_schemadrift, "
                "profiles_rawevent, django_q_ormq, django_q_task CASCADE"
            )

    # -- figures -------------------------------------------------------------------------

    def run(self, *, events: int, volumes: list[int], repeats: int, seed: int) -> Figures:
        self.out(f"scratch database {self.db_name}: creating and migrating")
        self._recreate_database()
        source = json.loads(self._manage("create_source", "--kind", "tracking", "--name", "Benchmark SDK"))
        auth = "Basic " + base64.b64encode(f"{source['write_key']}:".encode()).decode()
        accepted, copies, processed = [], [], []
        for attempt in range(repeats):
            messages = segment_messages(events, people=max(events // 10, 1), seed=seed + attempt)
            self._reset_data()
            accepted.append(self._measure_accept(messages, auth))
            copies.append(self._measure_copy(messages))
            self.out(f"  run {attempt + 1}: accepted {accepted[-1]:,.0f} events/s; raw COPY {copies[-1]:,.0f} rows/s")
        for volume in volumes:
            self._reset_data()
            messages = segment_messages(volume, people=max(volume // 10, 1), seed=seed)
            self._measure_accept(messages, auth)
            # A live database has planner statistics (autovacuum keeps them); a scratch one
            # created seconds ago does not, and would be measured with plans for empty tables.
            with psycopg.connect(self.bench_url, autocommit=True) as conn:
                conn.execute("ANALYZE")
            processed.append(self._measure_processing(volume))
            _, rate, peak = processed[-1]
            self.out(f"  processed {volume:,} events: {rate:,.0f} events/s, peak RSS {peak / 1024:,.0f} MiB")
        return Figures(accepted, copies, processed)

    def _measure_accept(self, messages: list[dict], auth: str) -> float:
        port = _free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "cdp_site.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(self.server_workers),
                "--worker-class",
                "sync",
                "--keep-alive",
                "30",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env={**self.env, "DEBUG": "0", "LOG_LEVEL": "WARNING"},
        )
        try:
            _wait_for(port)
            bodies = [
                (json.dumps({"batch": messages[i : i + self.batch]}).encode(), len(messages[i : i + self.batch]))
                for i in range(0, len(messages), self.batch)
            ]
            # Warm every server worker (imports, connections) before timing.
            _sender((port, auth, [(json.dumps({"batch": []}).encode(), 0)] * self.server_workers * 2))
            shares = [(port, auth, bodies[i :: self.senders]) for i in range(self.senders)]
            started = time.perf_counter()
            with multiprocessing.get_context("fork").Pool(self.senders) as pool:
                total = sum(pool.map(_sender, shares))
            elapsed = time.perf_counter() - started
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        with psycopg.connect(self.bench_url) as conn:
            stored = conn.execute("SELECT count(*) FROM profiles_rawevent").fetchone()[0]
        if stored < total:
            raise RuntimeError(f"accepted {total} events but only {stored} raw events are stored")
        return total / elapsed

    def _measure_copy(self, messages: list[dict]) -> float:
        """The baseline: the same rows, binary COPY straight into a table shaped like raw events."""
        now = datetime.now(UTC)
        rows = [(1, m["messageId"], m["type"], now, json.dumps(m), "{}", "pending", "", 0, None) for m in messages]
        with psycopg.connect(self.bench_url) as conn:
            conn.execute("CREATE TEMP TABLE copy_baseline (LIKE profiles_rawevent INCLUDING ALL)")
            columns = (
                "source_id, external_id, topic, received_at, payload, headers, status, error, attempts, processed_at"
            )
            started = time.perf_counter()
            with conn.cursor().copy(f"COPY copy_baseline ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(
                    [
                        "int8",
                        "varchar",
                        "varchar",
                        "timestamptz",
                        "jsonb",
                        "jsonb",
                        "varchar",
                        "text",
                        "int4",
                        "timestamptz",
                    ]
                )
                for row in rows:
                    copy.write_row(row)
            conn.commit()
            return len(rows) / (time.perf_counter() - started)

    def _measure_processing(self, volume: int) -> tuple[int, float, int]:
        script = (
            "import resource, time, django; django.setup();"
            "from profiles.processing import raw_events_process;"
            "t = time.perf_counter(); r = raw_events_process(); e = time.perf_counter() - t;"
            "print(r.processed, r.quarantined, r.failed, e, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
        )
        result = subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            env={**self.env, "LOG_LEVEL": "WARNING"},
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"processing failed:\n{result.stderr[-3000:]}")
        processed, quarantined, failed, elapsed, peak = result.stdout.split()[-5:]
        if int(processed) != volume:
            raise RuntimeError(f"processed {processed} of {volume} (quarantined {quarantined}, failed {failed})")
        return volume, volume / float(elapsed), int(peak)


def configured_postgres_url() -> str:
    """The configured PostgreSQL database as a URL for psycopg; CommandError on other engines.
    Every benchmark command starts from it and makes a scratch database beside it."""
    from django.conf import settings
    from django.core.management.base import CommandError

    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.postgresql":
        raise CommandError("The benchmark runs on PostgreSQL: set DATABASE_URL=postgres://...")
    host, port = database["HOST"] or "127.0.0.1", database["PORT"] or 5432
    url = f"postgresql://{database['USER']}@{host}:{port}/{database['NAME']}"
    if database.get("PASSWORD"):
        url = url.replace("@", f":{database['PASSWORD']}@", 1)
    return url


def as_url(info: dict, dbname: str) -> str:
    """A Django DATABASE_URL for database `dbname` on the server `info` (psycopg conninfo) names."""
    user = info.get("user", "postgres")
    password = f":{info['password']}" if info.get("password") else ""
    host = info.get("host", "127.0.0.1")
    port = info.get("port", "5432")
    return f"postgres://{user}{password}@{host}:{port}/{dbname}"


def median(values: list[float]) -> float:
    return statistics.median(values)


def self_peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

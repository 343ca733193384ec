"""Segment benchmark: a five-condition segment computed in full by the compiled query, beside the
best hand-written PostgreSQL SQL for the same audience and DuckDB running that SQL over the same
data exported, and one profile re-evaluated (the real-time path), all in one run.

Runs against a scratch PostgreSQL database of its own (created, migrated, filled server-side with
generate_series, dropped afterwards). Compiled queries run in a fresh Django process.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from profiles.benchmark import as_url

ROOT = Path(__file__).resolve().parent.parent
DATABASE_NAME = "cdp_bench_segments"
NOW = datetime(2026, 11, 1, tzinfo=UTC)

# Two traits, an event count in 30 days, an absence, consent.
DEFINITION = {
    "all": [
        {"trait": "city", "op": "eq", "value": "Paris"},
        {"trait": "age", "op": "gte", "value": 30},
        {"event": "class.attended", "within_last_days": 30, "count": {"op": "gte", "value": 2}},
        {"not": {"event": "order.completed", "within_last_days": 90}},
        {"consent": "email_marketing"},
    ]
}

# The best hand-written PostgreSQL for the same audience: containment for the string trait, the
# count as a per-profile subquery on the (profile, occurred_at) index and the absence as NOT
# EXISTS. (Grouping the attendees once looks cheaper, but the planner estimates one row for the
# JSON filters and re-runs the whole aggregate per profile: minutes instead of seconds.)
HAND_WRITTEN_PG = """
SELECT count(*) FROM profiles_profile p
WHERE p.status = 'active'
  AND p.traits @> '{"city": "Paris"}'
  AND jsonb_typeof(p.traits -> 'age') = 'number' AND (p.traits ->> 'age')::numeric >= 30
  AND p.consent -> 'email_marketing' @> '{"is_granted": true}'
  AND (SELECT count(*) FROM profiles_event e
       WHERE e.profile_id = p.id AND e.type = 'class.attended'
         AND e.occurred_at >= %(since30)s AND e.occurred_at <= %(now)s) >= 2
  AND NOT EXISTS (
    SELECT 1 FROM profiles_event o
    WHERE o.profile_id = p.id AND o.type = 'order.completed'
      AND o.occurred_at >= %(since90)s AND o.occurred_at <= %(now)s)
"""

# The same audience for DuckDB over the exported columns.
HAND_WRITTEN_DUCKDB = """
SELECT count(*) FROM profiles p
WHERE p.status = 'active' AND p.city = 'Paris' AND p.age >= 30 AND p.email_consent
  AND p.id IN (
    SELECT profile_id FROM events
    WHERE type = 'class.attended' AND occurred_at >= TIMESTAMPTZ '{since30}' AND occurred_at <= TIMESTAMPTZ '{now}'
    GROUP BY profile_id HAVING count(*) >= 2)
  AND NOT EXISTS (
    SELECT 1 FROM events o
    WHERE o.profile_id = p.id AND o.type = 'order.completed'
      AND o.occurred_at >= TIMESTAMPTZ '{since90}' AND o.occurred_at <= TIMESTAMPTZ '{now}')
"""

COMPILED_SCRIPT = """
import json, sys, time, statistics, random
from datetime import datetime
import django
django.setup()
from django.db import connection
from segments.compiler import profile_matches, segment_queryset
definition, now, repeats = json.loads(sys.argv[1]), datetime.fromisoformat(sys.argv[2]), int(sys.argv[3])
hand_sql, hand_params = sys.argv[4], {k: datetime.fromisoformat(v) for k, v in json.loads(sys.argv[5]).items()}
never = lambda slug: {}

def compiled_count():
    return segment_queryset(definition, now=now, resolve_segment=never).count()

def hand_count():
    with connection.cursor() as cursor:
        cursor.execute(hand_sql, hand_params)
        return cursor.fetchone()[0]

compiled_count(), hand_count()  # warm the cache for both, then alternate
full, hand = [], []
for _ in range(repeats):
    started = time.perf_counter()
    count = compiled_count()
    full.append(time.perf_counter() - started)
    started = time.perf_counter()
    hand_total = hand_count()
    hand.append(time.perf_counter() - started)
with connection.cursor() as cursor:
    cursor.execute("SELECT min(id), max(id) FROM profiles_profile")
    low, high = cursor.fetchone()
rng = random.Random(7)
single = []
for _ in range(200):
    profile_id = rng.randint(low, high)
    started = time.perf_counter()
    profile_matches(profile_id, definition, now=now, resolve_segment=never)
    single.append(time.perf_counter() - started)
print(json.dumps({"count": count, "full": full, "hand": hand, "hand_count": hand_total,
                  "single_median_ms": statistics.median(single) * 1000,
                  "single_p95_ms": sorted(single)[int(len(single) * 0.95)] * 1000}))
"""


LATENCY_SCRIPT = """
import json, os, statistics, subprocess, sys, time
import django
django.setup()
from django.utils import timezone
from profiles.ingest import IncomingEvent, raw_events_store
from profiles.sources import source_create
from segments.models import SegmentMembership
from segments.services import segment_create

count = int(sys.argv[1])
source, _ = source_create(name="Latency", kind="tracking")
segment = segment_create(slug="latency-check", name="Latency check", note="benchmark", author="benchmark",
                         definition={"event": "track.custom", "within_last_days": 30})
env = {**os.environ, "Q_WORKERS": "2"}
cluster = subprocess.Popen([sys.executable, "manage.py", "qcluster"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    time.sleep(4)  # the cluster starts its workers
    latencies = []
    for n in range(count):
        user = f"latency-{n}-{time.time_ns()}"
        at = timezone.now().isoformat()
        message = {"type": "track", "event": "Class Attended", "userId": user, "messageId": user,
                   "timestamp": at, "sentAt": at, "receivedAt": at, "properties": {"class_name": "Yoga"}}
        started = time.perf_counter()
        raw_events_store(source=source, events=[IncomingEvent(user, message, topic="track")])
        deadline = started + 5
        while time.perf_counter() < deadline:
            if SegmentMembership.objects.filter(segment=segment, exited_at__isnull=True,
                                                profile__identifiers__value=user).exists():
                latencies.append(time.perf_counter() - started)
                break
            time.sleep(0.005)
        time.sleep(0.3)
finally:
    cluster.terminate()
    cluster.wait(timeout=30)
from profiles.models import RawEvent
statuses = {s: RawEvent.objects.filter(source=source, status=s).count()
            for s in ("pending", "processed", "quarantined", "failed")}
print(json.dumps({"samples": len(latencies), "asked": count, "raw_events": statuses,
                  "median_ms": statistics.median(latencies) * 1000 if latencies else None,
                  "p95_ms": sorted(latencies)[int(len(latencies) * 0.95)] * 1000 if latencies else None}))
"""


class SegmentBenchmark:
    def __init__(self, *, database_url: str, out):
        self.admin_url, self.out = database_url, out
        self.bench_url = psycopg.conninfo.make_conninfo(database_url, dbname=DATABASE_NAME)
        info = psycopg.conninfo.conninfo_to_dict(database_url)
        self.env = {
            **os.environ,
            "DATABASE_URL": as_url(info, DATABASE_NAME),
            "DJANGO_SETTINGS_MODULE": "cdp_site.settings",
            "DEBUG": "0",
            "LOG_LEVEL": "WARNING",
        }

    def _python(self, *args) -> str:
        result = subprocess.run([sys.executable, *args], cwd=ROOT, env=self.env, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)[:200]} failed:\n{result.stderr[-3000:]}")
        return result.stdout

    def recreate_database(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True, dbname="postgres") as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE_NAME}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
        self._python("manage.py", "migrate", "--noinput")
        # Monthly partitions for the year of generated events, as an operator creates them before a
        # backfill; without them the rows would all land in the default partition.
        first = NOW - timedelta(days=400)
        self._python("manage.py", "event_partitions", "--ensure", "--from", f"{first:%Y-%m}")
        self._python("manage.py", "create_source", "--kind", "csv", "--name", "Segment benchmark")

    def drop_database(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True, dbname="postgres") as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE_NAME}" WITH (FORCE)')

    def generate(self, *, profiles: int, events: int) -> None:
        """Profiles with city, age and plan traits and an email consent summary; events of six types
        spread over a year, skewed so some people are far more active than others."""
        started = time.perf_counter()
        with psycopg.connect(self.bench_url, autocommit=True) as conn:
            conn.execute("SET maintenance_work_mem = '512MB'")
            source_id = conn.execute("SELECT min(id) FROM profiles_source").fetchone()[0]
            indexes = conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'profiles_event' "
                "AND indexname NOT IN (SELECT conname FROM pg_constraint)"
            ).fetchall()
            for name, _ in indexes:
                conn.execute(f'DROP INDEX IF EXISTS "{name}"')
            conn.execute(
                "INSERT INTO profiles_profile (id, status, traits, trait_provenance, consent, lifecycle, "
                "lifetime_revenue, merge_confidence, created_at, updated_at) "
                "SELECT n, 'active', jsonb_build_object("
                "  'city', (ARRAY['Paris','London','Berlin','Madrid','Rome','Lisbon','Vienna','Prague','Dublin',"
                "'Oslo'])"
                "[1 + (hashint8(n) & 2147483647) %% 10], 'age', 18 + (hashint8(n + 1) & 2147483647) %% 60,"
                "  'plan', (ARRAY['free','gold','silver'])[1 + (hashint8(n + 2) & 2147483647) %% 3]), '{}', "
                "  CASE WHEN (hashint8(n + 3) & 2147483647) %% 10 < 6 THEN jsonb_build_object('email_marketing', "
                "    jsonb_build_object('is_granted', (hashint8(n + 4) & 2147483647) %% 5 > 0, "
                "    'captured_at', '2026-01-01T00:00:00+00:00', 'source_id', %s)) ELSE '{}' END, "
                "  'customer', 0, 1.0, now(), now() FROM generate_series(1::bigint, %s) AS n",
                [source_id, profiles],
            )
            conn.execute("SELECT setval(pg_get_serial_sequence('profiles_profile', 'id'), %s)", [profiles])
            per_raw = 30_000
            conn.execute(
                "INSERT INTO profiles_rawevent (source_id, external_id, topic, received_at, payload, headers, status, "
                "error, attempts) SELECT %s, 'bench-' || r, '', now(), '{}', '{}', 'processed', '', 1 "
                "FROM generate_series(0, %s) AS r",
                [source_id, events // per_raw],
            )
            first_raw = conn.execute("SELECT min(id) FROM profiles_rawevent").fetchone()[0]
            conn.execute(
                "INSERT INTO profiles_event (profile_id, source_id, raw_event_id, sequence, type, name, occurred_at, "
                "received_at, properties, currency) "
                "SELECT 1 + floor(power(random(), 1.6) * %(profiles)s)::bigint, %(source)s, "
                "  %(first_raw)s + (n / %(per_raw)s), n %% %(per_raw)s, "
                "  (ARRAY['page.viewed','class.attended','booking.created','order.completed','payment.succeeded',"
                "  'product.viewed'])[1 + floor(random() * 6)::int], '', "
                "  %(now)s - random() * interval '365 days', %(now)s, '{}', '' "
                "FROM generate_series(0, %(events)s - 1) AS n",
                {
                    "profiles": profiles,
                    "source": source_id,
                    "first_raw": first_raw,
                    "per_raw": per_raw,
                    "now": NOW,
                    "events": events,
                },
            )
            for _name, definition in indexes:
                # A partitioned table's index reads "ON ONLY": without ONLY it is built on every partition.
                conn.execute(definition.replace(" ON ONLY ", " ON ", 1))
            conn.execute("VACUUM ANALYZE")
        self.out(f"  generated {profiles:,} profiles and {events:,} events in {time.perf_counter() - started:,.0f} s")

    def run(self, *, profiles: int, events: int, repeats: int, reuse: bool = False) -> dict:
        if reuse:
            self.out(f"scratch database {DATABASE_NAME}: reused as it is")
        else:
            self.out(f"scratch database {DATABASE_NAME}: creating and migrating")
            self.recreate_database()
            self.generate(profiles=profiles, events=events)
        figures = {"profiles": profiles, "events": events}
        params = {"now": NOW, "since30": NOW - timedelta(days=30), "since90": NOW - timedelta(days=90)}
        # Both in one process, warmed up, alternating: neither pays for a cold cache.
        compiled = json.loads(
            self._python(
                "-c",
                COMPILED_SCRIPT,
                json.dumps(DEFINITION),
                NOW.isoformat(),
                str(repeats),
                HAND_WRITTEN_PG,
                json.dumps({name: value.isoformat() for name, value in params.items()}),
            )
            .strip()
            .splitlines()[-1]
        )
        figures["compiled"] = compiled
        hand, count = compiled["hand"], compiled["hand_count"]
        figures["hand_written"] = {"count": count, "full": hand}
        figures["duckdb"] = self._duckdb(params, repeats)
        figures["latency"] = json.loads(self._python("-c", LATENCY_SCRIPT, "40").strip().splitlines()[-1])
        figures["plans"] = self.explain()
        self.out(
            f"  compiled: {_median(compiled['full']):.2f} s ({compiled['count']:,} profiles); hand-written: "
            f"{_median(hand):.2f} s ({count:,}); DuckDB: {_median(figures['duckdb']['full']):.2f} s "
            f"({figures['duckdb']['count']:,}); one profile: {compiled['single_median_ms']:.1f} ms median"
        )
        return figures

    def explain(self) -> list[dict]:
        """EXPLAIN ANALYZE of the queries pages, segments and tasks run on the events table, on this
        data (profiles/event_query_plans.py): partitions read and how."""
        result = subprocess.run(
            [sys.executable, "manage.py", "explain_event_queries", "--now", NOW.isoformat(), "--json"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
        )
        # A failed check exits non-zero after printing its figures: the benchmark reports it.
        start = result.stdout.find("[")
        if start < 0:
            raise RuntimeError(f"explain_event_queries failed:\n{result.stderr[-3000:]}")
        plans = json.loads(result.stdout[start:])
        for plan in plans:
            verdict = "ok" if plan["ok"] else "; ".join(plan["problems"])
            self.out(
                f"  plan: {plan['name']}: {plan['partitions']} partition(s), {', '.join(plan['scans'])}, "
                f"{plan['ms']:.1f} ms: {verdict}"
            )
        return plans

    def _duckdb(self, params: dict, repeats: int) -> dict:
        import duckdb

        with tempfile.TemporaryDirectory() as directory:
            profiles_csv, events_csv = Path(directory) / "profiles.csv", Path(directory) / "events.csv"
            with psycopg.connect(self.bench_url) as conn:
                for path, sql in (
                    (
                        profiles_csv,
                        "COPY (SELECT id, status, traits ->> 'city' AS city, CASE WHEN jsonb_typeof(traits -> 'age') "
                        "= 'number' THEN (traits ->> 'age')::int END AS age, "
                        "coalesce((consent -> 'email_marketing' ->> 'is_granted')::boolean, false) AS email_consent "
                        "FROM profiles_profile) TO STDOUT WITH (FORMAT csv, HEADER)",
                    ),
                    (
                        events_csv,
                        "COPY (SELECT profile_id, type, occurred_at FROM profiles_event) "
                        "TO STDOUT WITH (FORMAT csv, HEADER)",
                    ),
                ):
                    with open(path, "wb") as handle, conn.cursor().copy(sql) as copy:
                        for block in copy:
                            handle.write(block)
            database = duckdb.connect()
            database.execute(f"CREATE TABLE profiles AS SELECT * FROM read_csv_auto('{profiles_csv}')")  # noqa: S608
            database.execute(f"CREATE TABLE events AS SELECT * FROM read_csv_auto('{events_csv}')")  # noqa: S608
            sql = HAND_WRITTEN_DUCKDB.format(
                now=params["now"].isoformat(),
                since30=params["since30"].isoformat(),
                since90=params["since90"].isoformat(),
            )
            runs, count = [], None
            for _ in range(repeats):
                started = time.perf_counter()
                count = database.execute(sql).fetchone()[0]
                runs.append(time.perf_counter() - started)
            database.close()
        return {"count": count, "full": runs}


def _ms(latency: dict, name: str) -> str:
    value = latency.get(name)
    return f"{value:>10.1f}" if value is not None else f"{'none':>10}"


def _median(values: list[float]) -> float:
    return statistics.median(values)


def table(figures: dict) -> list[str]:
    compiled, hand, duck = figures["compiled"], figures["hand_written"], figures["duckdb"]
    ratio = _median(compiled["full"]) / _median(hand["full"])
    return [
        f"{'figure':<62}{'seconds':>10}",
        f"{'compiled query, five conditions, full audience (median)':<62}{_median(compiled['full']):>10.2f}",
        f"{'hand-written PostgreSQL SQL, same audience (median)':<62}{_median(hand['full']):>10.2f}",
        f"{'DuckDB, the same SQL over the exported columns (median)':<62}{_median(duck['full']):>10.2f}",
        f"{'compiled / hand-written':<62}{ratio:>10.2f}  (target <= 1.5)",
        f"{'one profile re-evaluated, median ms':<62}{compiled['single_median_ms']:>10.1f}",
        f"{'one profile re-evaluated, p95 ms':<62}{compiled['single_p95_ms']:>10.1f}",
        f"{'event stored to membership row, running worker, median ms':<62}{_ms(figures['latency'], 'median_ms')}"
        "  (target < 200)",
        f"{'event stored to membership row, running worker, p95 ms':<62}{_ms(figures['latency'], 'p95_ms')}",
        f"audience: compiled {compiled['count']:,}, hand-written {hand['count']:,}, DuckDB {duck['count']:,} "
        f"of {figures['profiles']:,} profiles, {figures['events']:,} events",
        "",
        "EXPLAIN ANALYZE on this data (events table partitioned by month):",
        f"{'query':<52}{'partitions':>11}  {'scan':<34}{'ms':>9}  verdict",
    ] + [
        f"{plan['name']:<52}{_partitions(plan):>11}  {', '.join(plan['scans']):<34}{plan['ms']:>9.1f}  "
        + ("ok" if plan["ok"] else "; ".join(plan["problems"]))
        for plan in figures.get("plans", [])
    ]


def _partitions(plan: dict) -> str:
    allowed = plan.get("allowed_partitions")
    return f"{plan['partitions']}/{allowed}" if allowed is not None else str(plan["partitions"])

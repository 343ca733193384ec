"""Activation benchmark: a steady-state sync of a large segment (default 1,000,000 members) where 1%
changed, to a local HTTP server standing in for Braze; and event-to-trigger delivery latency with a
running worker. All in one run, beside baselines measured in the same run:

- the diff (`diff_into_records`) beside a raw SQL EXCEPT over the same snapshot and state tables,
  both inside the snapshot's transaction as the engine runs it (after the engine's snapshot and its
  ANALYZE), alternating, medians;
- sending, against a destination that answers 429 with Retry-After above its rate limit, beside
  that limit;
- peak RSS of the process running the whole sync;
- event stored to trigger message answered, as the system records it (`TriggerSend.latency_ms`)
  and cross-checked against the local server's clock.

Runs against a scratch PostgreSQL database of its own (created, migrated, filled server-side with
generate_series, dropped afterwards). Everything that needs Django runs in child processes
configured against the scratch database (`child_main`).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from activations.local_destination import LocalDestination, Reply
from activations.triggers import latency_summary
from profiles.benchmark import as_url, median

ROOT = Path(__file__).resolve().parent.parent
DATABASE_NAME = "cdp_bench_activations"
CHANGED_EVERY = 100  # one profile in 100 changes its plan between the two runs: 1%
BRAZE_API_KEY = "bench-braze-key"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SEGMENT_SLUG, SYNC_SLUG, TRIGGER_SLUG = "bench-everyone", "bench-braze-sync", "bench-order-confirmation"
BRAZE_FIELDS = [
    {"name": "external_id", "source": "profile:id"},
    {"name": "email", "source": "identifier:email"},
    {"name": "plan", "source": "trait:plan"},
    {"name": "first_name", "source": "trait:first_name"},
]
# The baseline: the set difference itself, nothing written, over the tables the diff reads.
EXCEPT_SQL = (
    "SELECT count(*) FROM (SELECT profile_id, fingerprint FROM activations_syncsnapshot "
    "WHERE run_id = %s AND skip_reason = '' "
    "EXCEPT SELECT profile_id, fingerprint FROM activations_syncstate WHERE sync_id = %s) d"
)
# Placeholders as wide as a Fernet token of an email (120 characters): the diff reads the blind
# index only and never decrypts; the 1% whose payloads are built get real tokens (`seed`).
PLACEHOLDER_TOKEN_SQL = (
    "'gAAAAAB' || md5({n}::text) || md5(({n} + 1)::text) || md5(({n} + 2)::text) || left(md5({n}::text), 17)"
)


def email_for(n: int) -> str:
    return f"person{n}@example.com"


# -- the benchmark (parent process) ------------------------------------------------------------------


class ActivationBenchmark:
    def __init__(self, *, database_url: str, out):
        self.admin_url, self.out = database_url, out
        self.bench_url = psycopg.conninfo.make_conninfo(database_url, dbname=DATABASE_NAME)
        info = psycopg.conninfo.conninfo_to_dict(database_url)
        self.env = {
            **os.environ,
            "DATABASE_URL": as_url(info, DATABASE_NAME),
            "DJANGO_SETTINGS_MODULE": "cdp_site.settings",
            # Production-like: with DEBUG on, Django keeps every query in memory.
            "DEBUG": "0",
            "LOG_LEVEL": "WARNING",
        }

    # -- database -------------------------------------------------------------------------------

    def _manage(self, *args) -> None:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")

    def _child(self, step: str, **arguments) -> dict:
        """Run one step in a fresh Django process configured against the scratch database."""
        script = (
            "import sys, django; django.setup(); from activations.benchmark import child_main; child_main(sys.argv[1:])"
        )
        result = subprocess.run(
            [sys.executable, "-c", script, step, json.dumps(arguments)],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"benchmark step {step} failed:\n{result.stderr[-4000:]}")
        return json.loads(result.stdout.strip().splitlines()[-1])

    def recreate_database(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True, dbname="postgres") as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE_NAME}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
        self._manage("migrate", "--noinput")

    def drop_database(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True, dbname="postgres") as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE_NAME}" WITH (FORCE)')

    def generate(self, *, profiles: int, ids: dict) -> None:
        """Active profiles with plan and first_name traits and email consent granted, one email
        identifier each, and every one of them an open member of the published segment."""
        started = time.perf_counter()
        tables = ("profiles_profile", "identity_identifier", "segments_segmentmembership")
        with psycopg.connect(self.bench_url, autocommit=True) as conn:
            conn.execute("SET maintenance_work_mem = '512MB'")
            # Secondary indexes are built once after loading (constraints stay: they are checked).
            indexes = conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s) "
                "AND indexname NOT IN (SELECT conname FROM pg_constraint)",
                [list(tables)],
            ).fetchall()
            for name, _ in indexes:
                conn.execute(f'DROP INDEX IF EXISTS "{name}"')
            conn.execute(
                "INSERT INTO profiles_profile (id, status, traits, trait_provenance, consent, lifecycle, "
                "lifetime_revenue, merge_confidence, first_seen_at, last_seen_at, created_at, updated_at) "
                "SELECT n, 'active', jsonb_build_object("
                "  'plan', (ARRAY['free','gold','silver'])[1 + (hashint8(n) & 2147483647) %% 3], "
                "  'first_name', (ARRAY['Ada','Grace','Alan','Edsger','Barbara','Donald','Frances','Ken'])"
                "[1 + (hashint8(n + 1) & 2147483647) %% 8]), '{}', "
                "  jsonb_build_object('email_marketing', jsonb_build_object('is_granted', true, "
                "    'captured_at', '2026-01-01T00:00:00+00:00', 'source_id', %s)), "
                "  'customer', 0, 1.0, now(), now(), now(), now() FROM generate_series(1::bigint, %s) AS n",
                [ids["source_id"], profiles],
            )
            conn.execute("SELECT setval(pg_get_serial_sequence('profiles_profile', 'id'), %s)", [profiles])
            token = PLACEHOLDER_TOKEN_SQL.format(n="n")
            conn.execute(
                "INSERT INTO identity_identifier (identifier_type_id, value, encrypted_value, lookup_hash, profile_id, "  # noqa: S608
                "source_id, is_verified, first_seen_at, last_seen_at) "
                f"SELECT %s, '', {token}, "
                "encode(sha256(('email:person' || n || '@example.com')::bytea), 'hex'), "
                "n, %s, false, now(), now() FROM generate_series(1::bigint, %s) AS n",
                [ids["email_type_id"], ids["source_id"], profiles],
            )
            conn.execute(
                "INSERT INTO segments_segmentmembership (segment_id, profile_id, version_id, entered_at, exited_at, "
                "exit_version_id, is_holdout) "
                "SELECT %s, n, %s, now(), NULL, NULL, false FROM generate_series(1::bigint, %s) AS n",
                [ids["segment_id"], ids["version_id"], profiles],
            )
            for _name, definition in indexes:
                conn.execute(definition)
            conn.execute("VACUUM ANALYZE")
        self.out(
            f"  generated {profiles:,} profiles, identifiers and members in {time.perf_counter() - started:,.0f} s"
        )

    def _vacuum_analyze(self) -> None:
        with psycopg.connect(self.bench_url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")

    # -- figures --------------------------------------------------------------------------------

    def run(
        self,
        *,
        profiles: int,
        repeats: int,
        rate_limit: int,
        send_rate: float,
        events: int,
        event_rate: float,
        explain: bool = False,
    ) -> dict:
        began = time.perf_counter()
        figures: dict = {"profiles": profiles, "repeats": repeats, "changed": profiles // CHANGED_EVERY}
        self.out(f"scratch database {DATABASE_NAME}: creating and migrating")
        self.recreate_database()
        ids = self._child("setup")
        self.generate(profiles=profiles, ids=ids)
        seed = self._child("seed", sync_id=ids["sync_id"], profiles=profiles, email_type_id=ids["email_type_id"])
        self._vacuum_analyze()
        figures["seed"] = seed
        self.out(
            f"  state seeded from a first snapshot ({seed['state']:,} people, {seed['snapshot_seconds']:.1f} s); "
            f"{seed['changed']:,} plans changed"
        )

        self.out(f"  diff: warm-up and {repeats} repeats, alternating with the EXCEPT baseline")
        figures["diff"] = self._child(
            "diff", sync_id=ids["sync_id"], repeats=repeats, expected=figures["changed"], explain=explain
        )
        diff = figures["diff"]
        self.out(
            f"  snapshot {median(diff['snapshot']):.2f} s; diff {median(diff['ours']):.2f} s; "
            f"EXCEPT {median(diff['baseline']):.2f} s (medians)"
        )

        self.out(f"  sync run: local Braze limited to {rate_limit} requests/s (429 + Retry-After: 1)")
        with LocalDestination(lambda received: Reply(201, {"message": "success"}), rate_limit=rate_limit) as braze:
            send = self._child("send", sync_id=ids["sync_id"], url=braze.url, rate=send_rate)
            send["server"] = _check_braze(braze, profiles=profiles)
        send["rate_limit"], send["send_rate"] = rate_limit, send_rate
        figures["send"] = send
        self.out(
            f"  sent {send['applied']:,} records in {send['requests']} requests, {send['send_seconds']:.1f} s; "
            f"429s: {send['server']['rate_limited']}; peak RSS {send['peak_rss_mib']:.0f} MiB"
        )

        self.out(f"  trigger latency: {events} events at {event_rate:g}/s through a running worker")
        with LocalDestination() as hook:
            latency = self._child(
                "latency",
                trigger_slug=TRIGGER_SLUG,
                source_id=ids["source_id"],
                url=hook.url,
                events=events,
                rate=event_rate,
            )
            latency["destination_clock"] = _destination_clock(hook, latency)
        figures["latency"] = latency
        figures["elapsed_seconds"] = time.perf_counter() - began
        return figures


def _check_braze(server: LocalDestination, *, profiles: int) -> dict:
    """What the destination received: every changed person once, nobody else, nobody twice."""
    accepted = server.accepted()
    external_ids: list[str] = []
    unauthorised = 0
    for request in accepted:
        if request.path != "/users/track" or request.headers.get("authorization") != f"Bearer {BRAZE_API_KEY}":
            unauthorised += 1
            continue
        external_ids += [str(item["external_id"]) for item in request.json["attributes"]]
    expected = {str(n) for n in range(CHANGED_EVERY, profiles + 1, CHANGED_EVERY)}
    received = set(external_ids)
    times = [request.at for request in accepted]
    span = max(times) - min(times) if len(times) > 1 else 0.0
    return {
        "requests": len(accepted),
        "rate_limited": server.rate_limited,
        "unauthorised": unauthorised,
        "objects": len(external_ids),
        "distinct": len(received),
        "duplicates": len(external_ids) - len(received),
        "missing": len(expected - received),
        "unexpected": len(received - expected),
        "largest_request": max((len(request.json["attributes"]) for request in accepted), default=0),
        # Requests per second as the destination saw them arrive (first to last accepted).
        "arrival_rate": (len(times) - 1) / span if span else None,
    }


def _destination_clock(server: LocalDestination, latency: dict) -> dict:
    """Cross-check: the local server's receive time minus the raw event's received_at."""
    received_at = {int(k): v for k, v in latency["event_received_at"].items()}
    values = []
    for request in server.accepted():
        # webhook-id is the send's idempotency key: trigger-<trigger id>-event:<event id>
        message_id = request.headers.get("webhook-id", "")
        if ":" not in message_id:
            continue
        event_id = int(message_id.rsplit(":", 1)[1])
        if event_id in received_at:
            values.append((request.at - received_at[event_id]) * 1000)
    return latency_summary(values)


def _cell(value, spec: str = ",.2f") -> str:
    if value is None:
        return "-"
    return format(value, spec) if not isinstance(value, str) else value


def _met(ok: bool) -> str:
    return "yes" if ok else "NO"


def table(figures: dict) -> list[str]:
    diff, send, latency = figures["diff"], figures["send"], figures["latency"]
    members, changed = figures["profiles"], figures["changed"]
    ours, baseline, snapshot = median(diff["ours"]), median(diff["baseline"]), median(diff["snapshot"])
    ratio = ours / baseline if baseline else float("inf")
    server = send["server"]
    rate_limit = send["rate_limit"]
    request_rate = server["requests"] / send["send_seconds"] if send["send_seconds"] else 0.0
    record_rate = send["applied"] / send["send_seconds"] if send["send_seconds"] else 0.0
    exact = server["distinct"] == changed and not (
        server["duplicates"] or server["missing"] or server["unexpected"] or server["unauthorised"]
    )
    recorded, clock = latency["recorded"], latency["destination_clock"]
    p95 = recorded["p95_ms"]
    n = len(diff["ours"])
    rows = [
        ("figure", "ours", "baseline", "target", "met?"),
        (f"diff of {members:,} members, s (median of {n})", _cell(ours), _cell(baseline), "< 10 s", _met(ours < 10)),
        ("diff / raw SQL EXCEPT over the same tables", _cell(ratio), "1.00", "<= 2", _met(ratio <= 2)),
        ("diff, records/s (members / diff seconds)", _cell(members / ours, ",.0f"), _cell(members / baseline, ",.0f")),
        ("snapshot (INSERT ... SELECT of the audience, ANALYZE), s", _cell(snapshot)),
        ("snapshot + diff, s", _cell(snapshot + ours)),
        (
            f"operations planned ({changed:,} changed)",
            _cell(median(diff["planned"]), ",.0f"),
            _cell(median(diff["baseline_count"]), ",.0f"),
            f"= {changed:,}",
            _met(set(diff["planned"]) == {changed} and send["planned"] == changed),
        ),
        (
            f"sending, requests/s (limit {rate_limit}/s; ours set to {send['send_rate']:g})",
            _cell(request_rate),
            _cell(float(rate_limit)),
            f">= {0.9 * rate_limit:g}",
            _met(request_rate >= 0.9 * rate_limit),
        ),
        (
            f"sending, records/s ({send['applied']:,} in {server['requests']} requests)",
            _cell(record_rate, ",.0f"),
            _cell(rate_limit * 75.0, ",.0f"),
        ),
        ("429 answers received", _cell(server["rate_limited"], ",d")),
        (
            "external_ids received: distinct / twice / missing",
            f"{server['distinct']:,}/{server['duplicates']}/{server['missing']}",
            f"{changed:,}/0/0",
            "exact",
            _met(exact),
        ),
        ("whole sync run (snapshot, diff, payloads, send), s", _cell(send["wall_seconds"])),
        (
            f"peak RSS of the sync run's process, MiB ({_cell(send['rss_before_mib'], ',.0f')} before the run)",
            _cell(send["peak_rss_mib"], ",.0f"),
        ),
        (
            "event -> trigger delivered, p50 ms (baseline: server clock)",
            _cell(recorded["p50_ms"], ",.0f"),
            _cell(clock["p50_ms"], ",.0f"),
        ),
        (
            "event -> trigger delivered, p95 ms",
            _cell(p95, ",.0f"),
            _cell(clock["p95_ms"], ",.0f"),
            "< 1000",
            _met(p95 is not None and p95 < 1000 and recorded["count"] == latency["asked"]),
        ),
        ("event -> trigger delivered, max ms", _cell(recorded["max_ms"], ",.0f"), _cell(clock["max_ms"], ",.0f")),
    ]
    widths = (60, 14, 12, 10, 5)
    lines = [
        "".join(f"{cell:<{widths[0]}}" if i == 0 else f"{cell:>{widths[i]}}" for i, cell in enumerate(row)).rstrip()
        for row in rows
    ]
    lines.insert(1, "-" * sum(widths))
    statements = ", ".join(f"{value:.2f}" for value in diff["statement_medians"])
    lines += [
        "",
        "baselines: diff -> raw SQL EXCEPT (a count, nothing written) in the snapshot's transaction; sending -> the "
        f"destination's limit ({rate_limit} requests/s x 75 records); latency -> the local server's clock minus the "
        "raw event's received_at.",
        f"sync run: {send['members']:,} members, {send['planned']:,} planned, {send['applied']:,} applied, "
        f"{send['failed']} failed, {send['requests']} requests (429s included); engine recorded snapshot "
        f"{send['snapshot_seconds']:.2f} s, diff {send['diff_seconds']:.2f} s, send {send['send_seconds']:.2f} s; "
        f"the next run plans {send['next_run_planned']}.",
        f"diff statements, median s: {statements}",
        f"trigger sends: {recorded['count']} of {latency['asked']} sent at {latency['rate']:g} events/s; statuses "
        f"{latency['statuses']}; raw events {latency['raw_events']}; destination saw {clock['count']}.",
        f"benchmark took {figures['elapsed_seconds']:.0f} s",
    ]
    return lines


# -- child steps (Django configured against the scratch database) ------------------------------------


def child_main(argv: list[str]) -> None:
    step, arguments = argv[0], json.loads(argv[1])
    result = {"setup": _setup, "seed": _seed, "diff": _diff, "send": _send, "latency": _latency}[step](**arguments)
    print(json.dumps(result, default=str))


def _peak_rss_mib() -> float:
    """Peak RSS of this process: VmHWM on Linux (which `_reset_peak_rss` can reset), else ru_maxrss."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_rss_mib() -> float | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Linux: writing 5 to clear_refs resets the peak (VmHWM) to the current RSS, so the peak
    measured afterwards is the run's own, not the imports' at start-up."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def _setup() -> dict:
    from activations.destinations import destination_save
    from activations.models import Sync
    from activations.triggers import trigger_save
    from identity.models import IdentifierType
    from profiles.sources import source_create
    from segments.services import segment_create

    source, _credentials = source_create(name="Activation benchmark", kind="tracking")
    segment = segment_create(
        slug=SEGMENT_SLUG,
        name="Everyone with email consent",
        definition={"consent": "email_marketing"},
        note="benchmark",
        author="benchmark",
    )
    braze = destination_save(
        name="Braze (local)",
        slug="bench-braze",
        kind="braze",
        base_url="http://127.0.0.1:9",
        fields=BRAZE_FIELDS,
        idempotency_key="external_id",
        operations=["upsert"],
        consent_purpose="email_marketing",
        pii_mode="cleartext",
        batch_size=75,
        max_attempts=5,
        timeout_seconds=10,
        secrets={"api_key": BRAZE_API_KEY},
    )
    sync = Sync.objects.create(name="Braze audience", slug=SYNC_SLUG, segment=segment, destination=braze, mode="upsert")
    webhook = destination_save(
        name="Webhook (local)",
        slug="bench-webhook",
        kind="webhook",
        base_url="http://127.0.0.1:9",
        fields=[{"name": "user_id", "source": "identifier:user_id"}, {"name": "plan", "source": "trait:plan"}],
        idempotency_key="user_id",
        operations=["message"],
        consent_purpose="",
        pii_mode="cleartext",
        rate_limit_per_second=100,
        batch_size=1,
        timeout_seconds=5,
        secrets={"signing_secret": WEBHOOK_SECRET},
    )
    trigger_save(
        name="Order confirmation",
        slug=TRIGGER_SLUG,
        kind="event",
        destination=webhook,
        event_type="order.completed",
        template={"type": "order.confirmed", "plan": "{plan}"},
    )
    return {
        "source_id": source.pk,
        "segment_id": segment.pk,
        "version_id": segment.published_version_id,
        "email_type_id": IdentifierType.objects.get(slug="email").pk,
        "sync_id": sync.pk,
    }


def _seed(*, sync_id: int, profiles: int, email_type_id: int) -> dict:
    """What the destination last accepted = a first full snapshot (as if the first run had sent
    everyone); then 1% of the people change their plan, spread over the id range."""
    from django.db import connection, transaction
    from django.utils import timezone

    from activations.models import Sync, SyncRun
    from activations.syncs import snapshot_sql, sync_run_start
    from consent import vault

    sync = Sync.objects.select_related("destination", "segment").get(pk=sync_id)
    run = sync_run_start(sync=sync, triggered_by="benchmark: first run", enqueue=False)
    key_token = PLACEHOLDER_TOKEN_SQL.format(n="profile_id")
    with transaction.atomic(), connection.cursor() as cursor:
        started = time.perf_counter()
        cursor.execute(*snapshot_sql(run))
        snapshot_seconds = time.perf_counter() - started
        cursor.execute(
            "INSERT INTO activations_syncstate (sync_id, profile_id, key_hash, key, fingerprint, skip_reason, "  # noqa: S608
            f"accepted_at, record_id) SELECT %s, profile_id, key_hash, {key_token}, fingerprint, '', now(), NULL "
            "FROM activations_syncsnapshot WHERE run_id = %s AND skip_reason = ''",
            [sync.pk, run.pk],
        )
        state = cursor.rowcount
        # The first run's snapshot stays, as the engine keeps the latest run's: the steady state.
        now = timezone.now()
        SyncRun.objects.filter(pk=run.pk).update(
            status=SyncRun.COMPLETED, phase=SyncRun.DONE, members=state, started_at=now, finished_at=now
        )
        changed = list(range(CHANGED_EVERY, profiles + 1, CHANGED_EVERY))
        cursor.execute(
            'UPDATE profiles_profile SET traits = traits || \'{"plan": "platinum"}\', updated_at = now() '
            "WHERE id %% %s = 0",
            [CHANGED_EVERY],
        )
        assert cursor.rowcount == len(changed), (cursor.rowcount, len(changed))
        # Real ciphertext for the people whose payloads will be built (and decrypted).
        tokens = [vault.encrypt(email_for(n)) for n in changed]
        cursor.execute(
            "UPDATE identity_identifier i SET encrypted_value = v.token "
            "FROM unnest(%s::bigint[], %s::text[]) AS v(profile_id, token) "
            "WHERE i.profile_id = v.profile_id AND i.identifier_type_id = %s",
            [changed, tokens, email_type_id],
        )
    return {"state": state, "changed": len(changed), "snapshot_seconds": snapshot_seconds}


class _StatementTimer:
    """A Django execute wrapper timing each statement (and, when asked, explaining it)."""

    def __init__(self, explain: bool = False):
        self.seconds: list[float] = []
        self.plans: list[str] = []
        self.explain = explain

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        if self.explain and sql.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE", "SELECT")):
            result = execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params, many, context)
            self.plans.append(sql + "\n" + "\n".join(row[0] for row in context["cursor"].fetchall()))
        else:
            result = execute(sql, params, many, context)
        self.seconds.append(time.perf_counter() - started)
        return result


def _diff(*, sync_id: int, repeats: int, expected: int, explain: bool) -> dict:
    """Each repeat: the engine's snapshot (with its ANALYZE), then ours and the baseline in
    alternating order, in the snapshot's transaction (as `snapshot_and_diff` runs the diff), rolled
    back, so every repeat sees the same changes."""
    from django.db import connection

    from activations.models import Sync

    sync = Sync.objects.select_related("destination", "segment").get(pk=sync_id)
    names = ("snapshot", "ours", "baseline", "planned", "baseline_count")
    figures: dict = {name: [] for name in (*names, "members")}
    statements: list[list[float]] = []
    for attempt in range(repeats + 1):
        one = _diff_once(sync, ("ours", "baseline") if attempt % 2 == 0 else ("baseline", "ours"))
        with connection.cursor() as cursor:  # autocommit: what the rolled-back repeat left behind
            cursor.execute("VACUUM activations_syncsnapshot, activations_syncrecord, activations_syncstate")
        if {one["planned"], one["baseline_count"]} != {expected}:
            raise RuntimeError(
                f"expected {expected} planned operations, got {one['planned']} (EXCEPT {one['baseline_count']})"
            )
        if attempt == 0:
            figures["warm_up"] = {name: one[name] for name in ("snapshot", "ours", "baseline")}
            continue
        for name in (*names, "members"):
            figures[name].append(one[name])
        statements.append(one["statements"])
    figures["statement_medians"] = [statistics.median(column) for column in zip(*statements, strict=True)]
    if explain:
        figures["plans"] = _diff_once(sync, ("ours", "baseline"), explain=True)["plans"]
    return figures


def _diff_once(sync, order: tuple[str, ...], explain: bool = False) -> dict:
    from django.db import connection, transaction
    from django.utils import timezone

    from activations.models import SyncRecord, SyncRun, SyncSnapshot
    from activations.syncs import diff_into_records, snapshot_write, sync_run_start

    run = sync_run_start(sync=sync, triggered_by="benchmark: diff", enqueue=False)
    one: dict = {}
    timer = _StatementTimer(explain=explain)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            started = time.perf_counter()
            snapshot_write(run)
            one["snapshot"] = time.perf_counter() - started
            for which in order:
                started = time.perf_counter()
                if which == "ours":
                    with connection.execute_wrapper(timer):
                        diff_into_records(run, now=timezone.now())
                    one["ours"] = time.perf_counter() - started
                else:
                    if explain:
                        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + EXCEPT_SQL, [run.pk, sync.pk])
                        timer.plans.append(EXCEPT_SQL + "\n" + "\n".join(row[0] for row in cursor.fetchall()))
                    cursor.execute(EXCEPT_SQL, [run.pk, sync.pk])
                    one["baseline_count"] = cursor.fetchone()[0]
                    one["baseline"] = time.perf_counter() - started
            one["planned"] = SyncRecord.objects.filter(run=run).exclude(status=SyncRecord.SKIPPED).count()
            one["members"] = SyncSnapshot.objects.filter(run=run).count()
            transaction.set_rollback(True)
    finally:
        SyncRun.objects.filter(pk=run.pk).delete()
    one["statements"], one["plans"] = timer.seconds, timer.plans
    return one


def _send(*, sync_id: int, url: str, rate: float) -> dict:
    """The whole run as a worker does it (`sync_run_execute`): snapshot, diff, payloads, send."""
    from django.db.models import Count

    from activations.models import Destination, Sync, SyncRecord, SyncState
    from activations.syncs import sync_run_execute, sync_run_start

    sync = Sync.objects.select_related("destination", "segment").get(pk=sync_id)
    Destination.objects.filter(pk=sync.destination_id).update(base_url=url, rate_limit_per_second=rate)
    sync = Sync.objects.select_related("destination", "segment").get(pk=sync_id)
    run = sync_run_start(sync=sync, triggered_by="benchmark: send", enqueue=False)
    rss_before, peak_reset = _current_rss_mib(), _reset_peak_rss()
    started = time.perf_counter()
    run = sync_run_execute(run.pk)
    wall = time.perf_counter() - started
    peak = _peak_rss_mib()
    statuses = dict(
        SyncRecord.objects.filter(run=run).values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    accepted_now = SyncState.objects.filter(sync=sync, record_id__isnull=False).count()
    # The steady state after sending: nothing changed since, so the next run plans nothing.
    again = sync_run_start(sync=sync, triggered_by="benchmark: check", dry_run=True, enqueue=False)
    again = sync_run_execute(again.pk)
    return {
        "status": run.status,
        "error": run.error,
        "members": run.members,
        "planned": run.planned,
        "applied": run.applied,
        "failed": run.failed,
        "statuses": statuses,
        "requests": run.requests,
        "snapshot_seconds": run.snapshot_seconds,
        "diff_seconds": run.diff_seconds,
        "send_seconds": run.send_seconds,
        "wall_seconds": wall,
        "rss_before_mib": rss_before,
        "peak_reset": peak_reset,
        "peak_rss_mib": peak,
        "state_accepted": accepted_now,
        "next_run_planned": again.planned,
    }


def _latency(*, trigger_slug: str, source_id: int, url: str, events: int, rate: float) -> dict:
    """Events stored as the tracking API stores them, one at a time at `rate` a second, with a
    real worker (qcluster) processing them; the trigger's sends record event-to-answer latency."""
    from datetime import timedelta

    from django.db.models import Count
    from django.utils import timezone
    from django_q.models import Schedule

    from activations.models import Destination, Trigger, TriggerSend
    from activations.triggers import trigger_latency
    from profiles.ingest import IncomingEvent, raw_events_store
    from profiles.models import Event, RawEvent, Source

    trigger = Trigger.objects.get(slug=trigger_slug)
    Destination.objects.filter(pk=trigger.destination_id).update(base_url=url)
    source = Source.objects.get(pk=source_id)
    # The periodic jobs (a full refresh of the 1M-member segment among them) are held off while
    # measuring, so the figure is the event path's and not whichever job happened to start.
    Schedule.objects.update(next_run=timezone.now() + timedelta(days=1))
    env = {**os.environ, "Q_WORKERS": "2"}
    log = tempfile.TemporaryFile()
    cluster = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env, stdout=log, stderr=log)
    run_tag = time.time_ns()
    try:
        time.sleep(4)  # the cluster starts its workers
        interval = 1.0 / rate
        next_at = time.perf_counter()
        for n in range(events):
            user = f"buyer-{run_tag}-{n}"
            at = timezone.now().isoformat()
            message = {
                "type": "track",
                "event": "Order Completed",
                "userId": user,
                "messageId": user,
                "timestamp": at,
                "sentAt": at,
                "receivedAt": at,
                "properties": {"order_id": f"order-{n}", "total": 42.5, "currency": "EUR"},
                "context": {"traits": {"plan": "gold"}},
            }
            raw_events_store(source=source, events=[IncomingEvent(user, message, topic="track")])
            next_at += interval
            time.sleep(max(next_at - time.perf_counter(), 0))
        deadline = time.monotonic() + 60
        sends = TriggerSend.objects.filter(trigger=trigger)
        while time.monotonic() < deadline:
            if sends.exclude(status__in=[TriggerSend.PENDING, TriggerSend.SENDING]).count() >= events:
                break
            time.sleep(0.2)
    finally:
        cluster.terminate()
        cluster.wait(timeout=30)
    statuses = dict(sends.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    event_ids = list(sends.values_list("event_id", flat=True))
    received = {
        event_id: at.timestamp()
        for event_id, at in Event.objects.filter(id__in=event_ids).values_list("id", "received_at")
    }
    raw = dict(
        RawEvent.objects.filter(source=source).values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    log.seek(0)
    cluster_log = log.read().decode(errors="replace")
    log.close()
    return {
        "asked": events,
        "cluster_log": cluster_log[-3000:] if statuses.get(TriggerSend.SENT, 0) < events else "",
        "rate": rate,
        "statuses": statuses,
        "raw_events": raw,
        "recorded": trigger_latency(trigger),
        "event_received_at": received,
    }

"""Identity graph benchmark: a full rebuild of the graph and incremental resolution of a batch of
new links, beside SciPy's connected_components on the same edge list and a raw binary COPY out and
in of the same rows, all measured in one run.

Runs against a scratch PostgreSQL database of its own (created, migrated, filled with COPY and
dropped), like the ingestion benchmark. Every measurement runs in a fresh Python process, so its
peak RSS (VmHWM) is the measured step's own and no cache survives from the step before.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

from consent import vault
from profiles.benchmark import as_url

ROOT = Path(__file__).resolve().parent.parent
DATABASE_NAME = "cdp_bench_identity"
SOURCE_SLUG = "identity-benchmark"
# Position in a multi-identifier component -> identifier type; from the sixth on, devices.
COMPONENT_TYPES = ["user_id", "email", "phone", "mindbody_client_id", "shopify_customer_id"]
DEVICE_TYPE = "anonymous_id"
SINGLE_TYPE = "mindbody_client_id"  # canonical with room to merge (limit 3): the incremental joins use them


def value_for(type_slug: str, n: int) -> str:
    """The normalised value of identifier n (its id) of a type."""
    if type_slug == "email":
        return f"person{n}@example.com"
    if type_slug == "phone":
        return f"+1415{n:07d}"
    return f"{type_slug[:2]}-{n}"


@dataclass
class Layout:
    """What was generated, so the incremental run can name existing identifiers."""

    identifiers: int
    links: int
    profiles: int
    components: int
    singles: list[int] = field(default_factory=list)  # ids of single-identifier profiles' identifiers
    user_ids: list[int] = field(default_factory=list)  # ids of user_id identifiers in larger components


class Generator:
    """Writes a consistent identity graph with COPY: components of 2-10 identifiers (a random
    spanning tree plus extra links inside the component, up to the link count), some singles and
    a few long paths (thousands of hops wide), one profile per component, some merged profiles
    pointing to them, and one event for every fourth identifier."""

    def __init__(self, conn: psycopg.Connection, *, seed: int):
        self.conn, self.rng = conn, random.Random(seed)
        self.types = dict(conn.execute("SELECT slug, id FROM identity_identifiertype").fetchall())
        self.pii = {slug for (slug,) in conn.execute("SELECT slug FROM identity_identifiertype WHERE is_pii")}
        self.source_id = conn.execute("SELECT id FROM profiles_source WHERE slug = %s", [SOURCE_SLUG]).fetchone()[0]

    def run(self, *, identifiers: int, links: int, singles: int) -> Layout:
        rng = self.rng
        paths, path_length = 10, max(identifiers // 200, 10)
        sizes = [1] * singles + [path_length] * paths
        left = identifiers - sum(sizes)
        while left > 0:
            size = min(rng.randint(2, 10), left)
            sizes.append(size)
            left -= size
        rng.shuffle(sizes)
        tree_links = sum(size - 1 for size in sizes)
        capacity = sum(size * (size - 1) // 2 - (size - 1) for size in sizes if 1 < size <= 10)
        if links < tree_links or links - tree_links > capacity:
            raise ValueError(f"{links} links cannot be laid over {identifiers} identifiers in this layout")
        extra_ratio = (links - tree_links) / capacity if capacity else 0.0

        layout = Layout(identifiers=identifiers, links=0, profiles=0, components=len(sizes))
        now = datetime(2026, 11, 1, tzinfo=UTC)
        identifier_rows, link_rows, component_of = [], [], []
        next_id = 1
        for component, size in enumerate(sizes, start=1):
            members = list(range(next_id, next_id + size))
            next_id += size
            for position, identifier_id in enumerate(members):
                if size == 1:
                    slug = SINGLE_TYPE
                    layout.singles.append(identifier_id)
                elif size == path_length and size > 10:
                    slug = "user_id" if position == 0 else DEVICE_TYPE
                else:
                    slug = COMPONENT_TYPES[position] if position < len(COMPONENT_TYPES) else DEVICE_TYPE
                    if position == 0:
                        layout.user_ids.append(identifier_id)
                identifier_rows.append((identifier_id, slug, component))
                component_of.append(component)
            if size > 10:  # a path: every hop one link, the widest a component gets
                pairs = [(members[i], members[i + 1]) for i in range(size - 1)]
            else:
                pairs = [(members[rng.randrange(i)], members[i]) for i in range(1, size)]
                tree = {(min(p), max(p)) for p in pairs}
                others = [(a, b) for i, a in enumerate(members) for b in members[i + 1 :] if (a, b) not in tree]
                wanted = int(len(others) * extra_ratio + rng.random())
                pairs.extend(rng.sample(others, min(wanted, len(others))))
            link_rows.extend((min(a, b), max(a, b)) for a, b in pairs)
        layout.links = len(link_rows)
        self._write_profiles(len(sizes), now)
        self._write_identifiers(identifier_rows, now)
        self._write_links(link_rows, now)
        self._write_events(identifier_rows, now)
        layout.profiles = self.conn.execute("SELECT count(*) FROM profiles_profile").fetchone()[0]
        self.conn.commit()
        return layout

    def _write_profiles(self, components: int, now: datetime) -> None:
        merged = components // 10  # some history: profiles absorbed by a merge, pointing to a survivor
        columns = (
            "id, status, merged_into_id, traits, trait_provenance, consent, lifecycle, lifetime_revenue, "
            "merge_confidence, first_seen_at, last_seen_at, created_at, updated_at"
        )
        types = ["int8", "varchar", "int8", "jsonb", "jsonb", "jsonb", "varchar", "numeric", "float8"] + [
            "timestamptz"
        ] * 4
        empty = Jsonb({})
        with self.conn.cursor().copy(f"COPY profiles_profile ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(types)
            for profile_id in range(1, components + 1):
                copy.write_row((profile_id, "active", None, empty, empty, empty, "known", 0, 1.0, now, now, now, now))
            for n in range(merged):
                survivor = self.rng.randint(1, components)
                copy.write_row(
                    (components + 1 + n, "merged", survivor, empty, empty, empty, "known", 0, 1.0, now, now, now, now)
                )
        self.conn.execute("SELECT setval(pg_get_serial_sequence('profiles_profile', 'id'), %s)", [components + merged])

    def _write_identifiers(self, rows: list[tuple[int, str, int]], now: datetime) -> None:
        columns = (
            "id, identifier_type_id, value, encrypted_value, lookup_hash, profile_id, source_id, is_verified, "
            "first_seen_at, last_seen_at"
        )
        types = ["int8", "int8", "varchar", "text", "varchar", "int8", "int8", "bool", "timestamptz", "timestamptz"]
        with self.conn.cursor().copy(f"COPY identity_identifier ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(types)
            for identifier_id, slug, component in rows:
                normalised = value_for(slug, identifier_id)
                is_pii = slug in self.pii
                copy.write_row(
                    (
                        identifier_id,
                        self.types[slug],
                        "" if is_pii else normalised,
                        vault.encrypt(normalised) if is_pii else "",
                        vault.blind_index(slug, normalised),
                        component,
                        self.source_id,
                        False,
                        now,
                        now,
                    )
                )
        self.conn.execute("SELECT setval(pg_get_serial_sequence('identity_identifier', 'id'), %s)", [len(rows)])

    def _write_links(self, rows: list[tuple[int, int]], now: datetime) -> None:
        columns = "from_identifier_id, to_identifier_id, kind, status, confidence, rule, evidence, reason, created_at"
        types = ["int8", "int8", "varchar", "varchar", "float8", "varchar", "jsonb", "varchar", "timestamptz"]
        evidence = Jsonb({"generated": True})
        with self.conn.cursor().copy(f"COPY identity_identitylink ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(types)
            for a, b in rows:
                copy.write_row((a, b, "deterministic", "active", 1.0, "co_observed", evidence, "", now))

    def _write_events(self, identifiers: list[tuple[int, str, int]], now: datetime) -> None:
        chosen = [
            (identifier_id, component) for identifier_id, _slug, component in identifiers if identifier_id % 4 == 0
        ]
        raw_columns = "id, source_id, external_id, topic, received_at, payload, headers, status, error, attempts"
        raw_types = ["int8", "int8", "varchar", "varchar", "timestamptz", "jsonb", "jsonb", "varchar", "text", "int4"]
        with self.conn.cursor().copy(f"COPY profiles_rawevent ({raw_columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(raw_types)
            for n, (identifier_id, _component) in enumerate(chosen, start=1):
                payload = Jsonb({"identifier": identifier_id})
                copy.write_row((n, self.source_id, f"bench-{n}", "", now, payload, Jsonb({}), "processed", "", 1))
        event_columns = (
            "profile_id, source_id, raw_event_id, sequence, type, name, occurred_at, received_at, properties, "
            "currency, identifier_id"
        )
        event_types = (
            ["int8", "int8", "int8", "int2", "varchar", "varchar"]
            + ["timestamptz"] * 2
            + [
                "jsonb",
                "varchar",
                "int8",
            ]
        )
        with self.conn.cursor().copy(f"COPY profiles_event ({event_columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(event_types)
            for n, (identifier_id, component) in enumerate(chosen, start=1):
                at = now - timedelta(seconds=n)
                copy.write_row(
                    (component, self.source_id, n, 0, "page.viewed", "", at, at, Jsonb({}), "", identifier_id)
                )
        self.conn.execute("SELECT setval(pg_get_serial_sequence('profiles_rawevent', 'id'), %s)", [len(chosen)])


def incremental_observations(layout: Layout, *, count: int, seed: int) -> list[list[list[str]]]:
    """Observations that each add one link: half attach a new email to an existing user_id, half
    join two existing single-identifier profiles (two mindbody client ids seen together)."""
    rng = random.Random(seed)
    joins = count // 2
    if len(layout.singles) < 2 * joins or len(layout.user_ids) < count - joins:
        raise ValueError("the graph is too small for this many incremental observations")
    singles = rng.sample(layout.singles, 2 * joins)
    users = rng.sample(layout.user_ids, count - joins)
    observations = [
        [
            [SINGLE_TYPE, value_for(SINGLE_TYPE, singles[2 * i])],
            [SINGLE_TYPE, value_for(SINGLE_TYPE, singles[2 * i + 1])],
        ]
        for i in range(joins)
    ]
    observations += [[["user_id", value_for("user_id", u)], ["email", f"new-{u}@example.net"]] for u in users]
    rng.shuffle(observations)
    return observations


# Measurement scripts, each run in a fresh process against the scratch database. They print one
# JSON line. Peak RSS is the process's own VmHWM (KiB): getrusage's ru_maxrss survives exec on
# Linux, so a child of this (large, data-generating) process would report its parent's size.
PEAK_RSS = """
def peak_rss_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
"""

REBUILD_SCRIPT = (
    PEAK_RSS
    + """
import json, sys, django
django.setup()
from identity.graph import identity_graph_rebuild
report = identity_graph_rebuild(apply=True)
print(json.dumps({**report.as_dict(), "peak_rss_kib": peak_rss_kib()}))
"""
)

CHECK_SCRIPT = (
    PEAK_RSS
    + """
import json, django
django.setup()
from identity.graph import identity_graph_check
report = identity_graph_check(examples=5)
print(json.dumps({**report.as_dict(), "peak_rss_kib": peak_rss_kib()}))
"""
)

IDLE_SCRIPT = (
    PEAK_RSS
    + """
import json, django
django.setup()
import identity.graph
print(json.dumps({"peak_rss_kib": peak_rss_kib()}))
"""
)

INCREMENTAL_SCRIPT = (
    PEAK_RSS
    + """
import json, sys, time, django
from datetime import UTC, datetime
django.setup()
from django.db import transaction
from django.utils import timezone
from identity.locks import identity_lock
from identity.models import IdentityLink, Merge
from identity.resolver import BatchResolver, Observed
from profiles.models import Profile, Source

observations = json.load(open(sys.argv[1]))
source_id = Source.objects.get(slug=sys.argv[2]).pk
seen_at = datetime(2026, 11, 20, tzinfo=UTC)
links_before = IdentityLink.objects.filter(status="active").count()
with transaction.atomic():
    identity_lock()
    started = time.perf_counter()
    # As profiles/processing.py drives it: normalise, preload, observe each, write.
    resolver = BatchResolver()
    phases = {}

    def timed(name, method=None):
        if method is None:
            return lambda function: timed(name, function)
        def wrapper(*args, **kwargs):
            began = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                phases[name] = phases.get(name, 0.0) + time.perf_counter() - began
        return wrapper

    # Where the time goes, without changing what runs: the resolver's own steps, timed.
    for name in ("preload", "_write_links", "_write_merges"):
        setattr(resolver, name, timed(name.strip("_"), getattr(resolver, name)))
    batch = [[Observed(t, v) for t, v in observed] for observed in observations]
    resolver.preload([n for observed in batch for item in observed if (n := resolver.normalise(item))])
    began = time.perf_counter()
    for sequence, observed in enumerate(batch):
        resolver.observe(observed, source_id=source_id, seen_at=seen_at, evidence={"benchmark": sequence})
    phases["observe"] = time.perf_counter() - began
    now = timezone.now()

    @timed("create_profiles")
    def create_profiles(states):
        rows = Profile.objects.bulk_create([Profile(created_at=now, updated_at=now) for _ in states], batch_size=500)
        for state, row in zip(states, rows, strict=True):
            state.id = row.pk

    began = time.perf_counter()
    resolver.write_identity(create_profiles=create_profiles)
    phases["write_identity"] = time.perf_counter() - began
    elapsed = time.perf_counter() - started
    new_links = IdentityLink.objects.filter(status="active").count() - links_before
    merges = len(resolver.merges)
    transaction.set_rollback(True)  # every repeat resolves the same batch against the same graph
print(json.dumps({"seconds": elapsed, "phases": phases, "new_active_links": new_links, "merges": merges,
                  "peak_rss_kib": peak_rss_kib()}))
"""
)

BASELINE_SCRIPT = """
import io, json, sys, time
import numpy as np
import psycopg
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

url, size = sys.argv[1], int(sys.argv[2])
with psycopg.connect(url) as conn:
    # Raw COPY out: the active links' endpoints as binary COPY bytes, nothing parsed.
    buffer = io.BytesIO()
    started = time.perf_counter()
    with conn.cursor().copy(
        "COPY (SELECT from_identifier_id, to_identifier_id FROM identity_identitylink WHERE status = 'active') "
        "TO STDOUT (FORMAT BINARY)"
    ) as copy:
        for block in copy:
            buffer.write(block)
    copy_out = time.perf_counter() - started
    data = buffer.getvalue()
    # Binary COPY: 19-byte header, per row a 2-byte field count and (4-byte length, 8-byte value) per
    # field, a 2-byte trailer: fixed-width rows, so numpy reads them without a Python loop.
    started = time.perf_counter()
    row = np.dtype([("n", ">i2"), ("la", ">i4"), ("a", ">i8"), ("lb", ">i4"), ("b", ">i8")])
    rows = np.frombuffer(data, dtype=row, offset=19, count=(len(data) - 21) // row.itemsize)
    a, b = rows["a"].astype(np.int64), rows["b"].astype(np.int64)
    parse = time.perf_counter() - started
    started = time.perf_counter()
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(size, size)).tocsr()
    count, labels = connected_components(graph, directed=False)
    scipy_seconds = time.perf_counter() - started
    # Raw COPY in: the same rows (the same bytes) into a scratch table.
    conn.execute("CREATE TEMP TABLE copy_baseline (a bigint, b bigint)")
    started = time.perf_counter()
    with conn.cursor().copy("COPY copy_baseline (a, b) FROM STDIN (FORMAT BINARY)") as copy:
        copy.write(data)
    conn.commit()
    copy_in = time.perf_counter() - started
print(json.dumps({"rows": len(a), "copy_out": copy_out, "parse": parse, "scipy": scipy_seconds,
                  "copy_in": copy_in, "scipy_components_incl_unused_ids": int(count)}))
"""


@dataclass
class Figures:
    layout: dict = field(default_factory=dict)
    check: list[dict] = field(default_factory=list)
    rebuild: list[dict] = field(default_factory=list)
    baseline: list[dict] = field(default_factory=list)
    incremental: dict[int, list[dict]] = field(default_factory=dict)  # identifiers -> runs
    repair: dict = field(default_factory=dict)
    repair_check: dict = field(default_factory=dict)
    idle_rss_kib: int = 0


class IdentityBenchmark:
    def __init__(self, *, database_url: str, out):
        self.admin_url, self.out = database_url, out
        info = psycopg.conninfo.conninfo_to_dict(database_url)
        self.bench_url = psycopg.conninfo.make_conninfo(database_url, dbname=DATABASE_NAME)
        self.env = {
            **os.environ,
            "DATABASE_URL": as_url(info, DATABASE_NAME),
            "DJANGO_SETTINGS_MODULE": "cdp_site.settings",
            # Production-like: with DEBUG on, Django keeps every query in memory.
            "DEBUG": "0",
            "LOG_LEVEL": "WARNING",
        }

    # -- database ------------------------------------------------------------------------

    def recreate_database(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True, dbname="postgres") as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE_NAME}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
        self._python("manage.py", "migrate", "--noinput")
        self._python(
            "manage.py", "create_source", "--kind", "csv", "--name", "Identity benchmark", "--slug", SOURCE_SLUG
        )

    def drop_database(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True, dbname="postgres") as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE_NAME}" WITH (FORCE)')

    def _python(self, *args) -> str:
        result = subprocess.run(
            [sys.executable, *args], cwd=ROOT, env=self.env, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)[:200]} failed:\n{result.stderr[-3000:]}")
        return result.stdout

    def _measure(self, script: str, *args) -> dict:
        return json.loads(self._python("-c", script, *args).strip().splitlines()[-1])

    def generate(self, *, identifiers: int, links: int, singles: int, seed: int) -> Layout:
        with psycopg.connect(self.bench_url, autocommit=True) as conn:
            conn.execute(
                "TRUNCATE profiles_event, profiles_traitvalue, consent_consentrecord, identity_merge, "
                "identity_identitylink, identity_identifier, profiles_profile, profiles_rawevent CASCADE"
            )
        started = time.perf_counter()
        with psycopg.connect(self.bench_url) as conn:
            layout = Generator(conn, seed=seed).run(identifiers=identifiers, links=links, singles=singles)
        with psycopg.connect(self.bench_url, autocommit=True) as conn:
            # A live database has statistics and a visibility map (autovacuum keeps them); a table
            # filled seconds ago has neither.
            conn.execute("VACUUM ANALYZE")
        self.out(
            f"  generated {layout.identifiers:,} identifiers, {layout.links:,} links, {layout.components:,} "
            f"components, {layout.profiles:,} profiles in {time.perf_counter() - started:,.0f} s"
        )
        return layout

    # -- figures -------------------------------------------------------------------------

    def run(
        self, *, identifiers: int, links: int, small: int, incremental: int, repeats: int, fix: float, seed: int
    ) -> Figures:
        figures = Figures()
        self.out(f"scratch database {DATABASE_NAME}: creating and migrating")
        self.recreate_database()
        figures.idle_rss_kib = self._measure(IDLE_SCRIPT)["peak_rss_kib"]
        for size in sorted({small, identifiers}):
            ratio = links / identifiers
            layout = self.generate(
                identifiers=size, links=int(size * ratio), singles=max(size // 10, incremental), seed=seed
            )
            if size == identifiers:
                figures.layout = {k: getattr(layout, k) for k in ("identifiers", "links", "profiles", "components")}
                self._full_size(figures, layout, repeats)
            observations = incremental_observations(layout, count=incremental, seed=seed)
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
                json.dump(observations, handle)
            try:
                runs = [self._measure(INCREMENTAL_SCRIPT, handle.name, SOURCE_SLUG) for _ in range(repeats)]
            finally:
                os.unlink(handle.name)
            figures.incremental[size] = runs
            self.out(
                f"  incremental, {incremental:,} new links on {size:,} identifiers: "
                + ", ".join(f"{r['seconds']:.2f} s" for r in runs)
                + f" ({runs[0]['new_active_links']:,} links, {runs[0]['merges']:,} merges; "
                + ", ".join(f"{k} {median([r['phases'][k] for r in runs]):.2f}" for k in runs[0]["phases"])
                + ")"
            )
            if size == identifiers and fix:
                self._repair(figures, layout, fix, seed)
        return figures

    def _full_size(self, figures: Figures, layout: Layout, repeats: int) -> None:
        figures.check.append(self._measure(CHECK_SCRIPT))
        check = figures.check[-1]
        self.out(
            f"  identity_check: {check['seconds']:.1f} s, consistent={check['is_consistent']}, "
            f"peak RSS {check['peak_rss_kib'] / 1024:,.0f} MiB"
        )
        for attempt in range(repeats):
            figures.rebuild.append(self._measure(REBUILD_SCRIPT))
            figures.baseline.append(self._measure(BASELINE_SCRIPT, self.bench_url, str(layout.identifiers + 1)))
            rebuild, baseline = figures.rebuild[-1], figures.baseline[-1]
            self.out(
                f"  run {attempt + 1}: rebuild {rebuild['seconds']['total']:.1f} s "
                f"({', '.join(f'{k} {v:.1f}' for k, v in rebuild['seconds'].items() if k != 'total')}), "
                f"peak RSS {rebuild['peak_rss_kib'] / 1024:,.0f} MiB; SciPy {baseline['scipy']:.2f} s; "
                f"raw COPY out {baseline['copy_out']:.2f} s, in {baseline['copy_in']:.2f} s"
            )
            if not rebuild["is_consistent"]:
                raise RuntimeError(f"the generated graph should be consistent: {rebuild}")

    def _repair(self, figures: Figures, layout: Layout, fraction: float, seed: int) -> None:
        """Undo a fraction of the merges' materialisation: one identifier of each chosen component
        (and its events) moved to a profile of its own, as if the merge had never moved it."""
        rng = random.Random(seed + 1)
        chosen = rng.sample(layout.user_ids, int(len(layout.user_ids) * fraction))
        with psycopg.connect(self.bench_url) as conn:
            first = conn.execute("SELECT max(id) + 1 FROM profiles_profile").fetchone()[0]
            conn.execute(
                "INSERT INTO profiles_profile (id, status, traits, trait_provenance, consent, lifecycle, "
                "lifetime_revenue, merge_confidence, created_at, updated_at) "
                "SELECT %s + n, 'active', '{}', '{}', '{}', 'known', 0, 1, now(), now() "
                "FROM unnest(%s::bigint[]) WITH ORDINALITY AS t(identifier_id, n)",
                [first - 1, chosen],
            )
            conn.execute(
                "UPDATE identity_identifier i SET profile_id = %s + t.n FROM unnest(%s::bigint[]) "
                "WITH ORDINALITY AS t(identifier_id, n) WHERE i.id = t.identifier_id",
                [first - 1, chosen],
            )
            conn.execute(
                "UPDATE profiles_event e SET profile_id = i.profile_id FROM identity_identifier i "
                "WHERE e.identifier_id = i.id AND i.id = ANY(%s::bigint[])",
                [chosen],
            )
            conn.execute(
                "SELECT setval(pg_get_serial_sequence('profiles_profile', 'id'), max(id)) FROM profiles_profile"
            )
        with psycopg.connect(self.bench_url, autocommit=True) as conn:
            conn.execute("ANALYZE")
        figures.repair = self._measure(REBUILD_SCRIPT)
        figures.repair["corrupted_components"] = len(chosen)
        figures.repair_check = self._measure(CHECK_SCRIPT)
        repair = figures.repair
        self.out(
            f"  rebuild with {len(chosen):,} components to repair: {repair['seconds']['total']:.1f} s "
            f"({', '.join(f'{k} {v:.1f}' for k, v in repair['seconds'].items() if k != 'total')}); "
            f"moved {repair['identifiers_moved']:,} identifiers and {repair['events_moved']:,} events, merged "
            f"{repair['profiles_merged']:,} profiles; identity_check afterwards: "
            f"consistent={figures.repair_check['is_consistent']}"
        )


def median(values: list[float]) -> float:
    return statistics.median(values)


def table(figures: Figures, *, incremental: int) -> list[str]:
    """The summary: our figure beside each baseline (medians)."""
    rebuild, baseline = figures.rebuild, figures.baseline
    links, identifiers = figures.layout["links"], figures.layout["identifiers"]

    def phase(name):
        return median([r["seconds"][name] for r in rebuild])

    def base(name):
        return median([b[name] for b in baseline])

    rows = [
        ("rebuild, total (s)", median([r["seconds"]["total"] for r in rebuild]), None, "target < 60 s"),
        (
            f"  stream out {identifiers + links:,} ids + links (rows/s)",
            (identifiers + links) / phase("stream_out"),
            links / base("copy_out"),
            "raw binary COPY out of the links, unparsed",
        ),
        ("  components (s)", phase("components"), base("scipy"), "SciPy connected_components, CSR build included"),
        (
            f"  COPY in {identifiers:,} assignments (rows/s)",
            identifiers / phase("copy_in"),
            links / base("copy_in"),
            "raw binary COPY in of the link rows' own bytes",
        ),
        ("  compare in SQL (s)", phase("compare"), None, ""),
        (
            "rebuild peak RSS (MiB)",
            median([r["peak_rss_kib"] for r in rebuild]) / 1024,
            figures.idle_rss_kib / 1024,
            "an idle Django process",
        ),
    ]
    for size, runs in sorted(figures.incremental.items()):
        rows.append(
            (
                f"incremental, {incremental:,} new links, {size:,} ids (s)",
                median([r["seconds"] for r in runs]),
                None,
                "target < 2 s",
            )
        )
    lines = [f"{'figure':<52}{'ours':>12}{'baseline':>12}  baseline is"]
    for name, ours, baseline_figure, note in rows:
        number = "{:>12,.0f}" if ours >= 1000 else "{:>12.2f}"
        base_text = number.format(baseline_figure) if baseline_figure is not None else " " * 12
        lines.append(f"{name:<52}{number.format(ours)}{base_text}  {note}")
    return lines

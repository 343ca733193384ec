"""The identity graph as a whole: connected components of identifiers over active links.

`identity_graph_check()` verifies the identity invariants of DESIGN.md on the live database and
`identity_graph_rebuild()` recomputes every component and repairs the materialisation
(Identifier.profile) where it disagrees. Both stream rows out (binary COPY on PostgreSQL, a plain
cursor on SQLite) into compact arrays indexed by primary key and compute components in memory with
union-find, so they cost a few sequential scans however wide a component is: never a query per
profile or per hop. Memory follows the highest id (8 bytes per id per array), not the row count.
"""

from __future__ import annotations

import logging
import sys
import time
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

from django.db import connection, transaction
from django.utils import timezone

from identity.locks import identity_lock
from identity.models import Identifier, IdentityLink, Merge
from profiles.models import Event, Profile, TraitValue

logger = logging.getLogger(__name__)

IDENTIFIERS = Identifier._meta.db_table
LINKS = IdentityLink._meta.db_table
PROFILES = Profile._meta.db_table
EVENTS = Event._meta.db_table
TRAIT_VALUES = TraitValue._meta.db_table
REBUILD_RULE = "graph_rebuild"

# Profile status codes in the per-profile bytearray (0: no such profile).
_STATUS_CODES = {Profile.ACTIVE: 1, Profile.MERGED: 2, Profile.DELETED: 3}
_STATUS_NAMES = {code: name for name, code in _STATUS_CODES.items()}
_FETCH = 20_000
_BLOCK_BYTES = 1 << 20


# -- streaming ------------------------------------------------------------------------------


def stream_columns(sql: str, typecodes: str) -> Iterator[tuple[array, ...]]:
    """A query's rows in blocks, one array per column: "q" for bigint, "d" for double precision
    columns, never NULL. `sql` takes no parameters (COPY cannot bind them), so callers only
    interpolate constants.

    PostgreSQL sends them with binary COPY. Such rows are fixed-width (a field count, then a
    length and 8 bytes per column), so a block of rows is decoded with a few strided slice copies
    in C instead of one Python call per row: streaming costs little more than the raw COPY.
    Elsewhere, batched fetches.
    """
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql)
            while batch := cursor.fetchmany(_FETCH):
                yield tuple(array(code, [row[i] for row in batch]) for i, code in enumerate(typecodes))
        return
    row_size = 2 + 12 * len(typecodes)
    with connection.cursor() as cursor, connection.wrap_database_errors:
        with cursor.cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT BINARY)") as copy:
            # One bytearray grown in place: keeping psycopg's per-row buffers in a list to join
            # later costs twice the COPY itself.
            buffer, header = bytearray(), True
            for block in copy:
                buffer += block
                if len(buffer) >= _BLOCK_BYTES:
                    if header:
                        _skip_header(buffer)
                        header = False
                    whole = len(buffer) - len(buffer) % row_size
                    yield _decode_rows(buffer[:whole], typecodes, row_size)
                    del buffer[:whole]
            if header:
                _skip_header(buffer)
            if len(buffer) % row_size == 2:  # the trailer, a field count of -1
                del buffer[-2:]
            if buffer:
                yield _decode_rows(buffer, typecodes, row_size)


_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"


def _skip_header(buffer: bytearray) -> None:
    if not buffer.startswith(_COPY_SIGNATURE):
        raise ValueError("not a binary COPY stream")
    extension = int.from_bytes(buffer[15:19], "big")
    del buffer[: 19 + extension]


def _decode_rows(data: bytes | bytearray, typecodes: str, row_size: int) -> tuple[array, ...]:
    count = len(data) // row_size
    first = data[:row_size]
    if count and (
        int.from_bytes(first[:2], "big") != len(typecodes)
        or any(first[2 + 12 * i : 6 + 12 * i] != b"\x00\x00\x00\x08" for i in range(len(typecodes)))
    ):
        raise ValueError(f"binary COPY rows are not {len(typecodes)} non-NULL 8-byte columns")
    columns = []
    for position, code in enumerate(typecodes):
        offset = 2 + 12 * position + 4  # field count, then per column a 4-byte length
        raw = bytearray(8 * count)
        for byte in range(8):
            raw[byte::8] = data[offset + byte :: row_size]
        column = array(code)
        column.frombytes(raw)
        if sys.byteorder == "little":  # COPY sends network byte order
            column.byteswap()
        columns.append(column)
    return tuple(columns)


def stream_rows(sql: str, typecodes: str) -> Iterator[tuple]:
    """The same, row by row."""
    for columns in stream_columns(sql, typecodes):
        yield from zip(*columns, strict=True)


def load_rows(table: str, columns: list[str], types: list[str], rows: Iterable[tuple]) -> None:
    """Write rows into a (temporary) table: binary COPY on PostgreSQL, executemany elsewhere."""
    column_list = ", ".join(columns)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor, connection.wrap_database_errors:
            with cursor.cursor.copy(f"COPY {table} ({column_list}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(types)
                for row in rows:
                    copy.write_row(row)
        return
    placeholders = ", ".join(["%s"] * len(columns))
    sql = f"INSERT INTO {table} ({column_list}) VALUES ({placeholders})"  # noqa: S608
    with connection.cursor() as cursor:
        batch = []
        for row in rows:
            batch.append(row)
            if len(batch) == _FETCH:
                cursor.executemany(sql, batch)
                batch = []
        if batch:
            cursor.executemany(sql, batch)


def _scalar(sql: str):
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()[0]


def _execute(sql: str, params=()) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _max_id(table: str) -> int:
    return _scalar(f"SELECT COALESCE(MAX(id), 0) FROM {table}")  # noqa: S608


@contextmanager
def _transaction(*, lock: bool, read_only: bool = True) -> Iterator[None]:
    """One transaction for the whole pass. With `lock`, the identity lock serialises it with
    resolution, reviews and unmerges (it writes); without, an outermost transaction on
    PostgreSQL reads one REPEATABLE READ snapshot, so resolution running meanwhile cannot show
    up as a violation. (Nested in another atomic block, as in tests, the caller's snapshot holds.)"""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if lock:
            identity_lock()
        elif outermost and connection.vendor == "postgresql":
            _execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ" + (", READ ONLY" if read_only else ""))
        yield


# -- components -----------------------------------------------------------------------------


def find_root(parent: array, node: int) -> int:
    """Root of a node, halving the path on the way (every other node points to its grandparent)."""
    while parent[node] != node:
        grandparent = parent[parent[node]]
        parent[node] = grandparent
        node = grandparent
    return node


def union_edges(parent: array, edges: Iterable[tuple[int, int]]) -> int:
    """Join the endpoints of each edge; the smaller id becomes the root, so a component's root is
    its smallest id. Returns the number of unions (edges that joined two components)."""
    unions = 0
    for a, b in edges:
        # find_root inlined: this loop is the whole cost of a rebuild's in-memory part.
        while parent[a] != a:
            grandparent = parent[parent[a]]
            parent[a] = grandparent
            a = grandparent
        while parent[b] != b:
            grandparent = parent[parent[b]]
            parent[b] = grandparent
            b = grandparent
        if a != b:
            unions += 1
            if a < b:
                parent[b] = a
            else:
                parent[a] = b
    return unions


def connected_components(nodes: Iterable[int], edges: Iterable[tuple[int, int]]) -> dict[int, int]:
    """{node: smallest node of its component} for small graphs (tests, one-off tools)."""
    nodes = sorted(set(nodes) | {n for edge in edges for n in edge})
    parent = array("q", range((nodes[-1] + 1) if nodes else 0))
    union_edges(parent, edges)
    return {node: find_root(parent, node) for node in nodes}


def _grow(values: array, size: int, fill) -> None:
    if len(values) < size:
        values.extend([fill] * (size - len(values)))


# -- check ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    kind: str
    message: str


@dataclass
class GraphReport:
    """What identity_graph_check found. The lists hold up to `examples` findings per kind; the
    counts hold them all."""

    counts: dict[str, int] = field(default_factory=dict)
    violations: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    violation_counts: Counter = field(default_factory=Counter)
    warning_counts: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def is_consistent(self) -> bool:
        return not self.violation_counts

    def as_dict(self) -> dict:
        return {
            "is_consistent": self.is_consistent,
            "counts": self.counts,
            "violation_counts": dict(sorted(self.violation_counts.items())),
            "warning_counts": dict(sorted(self.warning_counts.items())),
            "violations": [asdict(f) for f in self.violations],
            "warnings": [asdict(f) for f in self.warnings],
            "seconds": round(self.seconds, 3),
        }


class _Collector:
    def __init__(self, report: GraphReport, examples: int):
        self.report, self.examples = report, examples

    def violation(self, kind: str, message: str) -> None:
        self.report.violation_counts[kind] += 1
        if self.report.violation_counts[kind] <= self.examples:
            self.report.violations.append(Finding(kind, message))

    def warning(self, kind: str, message: str) -> None:
        self.report.warning_counts[kind] += 1
        if self.report.warning_counts[kind] <= self.examples:
            self.report.warnings.append(Finding(kind, message))


def identity_graph_check(*, examples: int = 50) -> GraphReport:
    """Check the identity invariants over the whole database (see the module docstring)."""
    started = time.perf_counter()
    report = GraphReport()
    found = _Collector(report, examples)
    with _transaction(lock=False):
        status, merged_into, confidence = _load_profiles(report)
        _check_merged_chains(status, merged_into, found)
        owner, has_identifier = _load_identifiers(report, status, found)
        parent, bottleneck, crossing = _link_components(report, owner, found)
        _check_profiles(report, status, confidence, owner, has_identifier, parent, bottleneck, crossing, found)
        _check_events(report, found)
    report.seconds = time.perf_counter() - started
    return report


def _load_profiles(report: GraphReport) -> tuple[bytearray, array, array]:
    size = _max_id(PROFILES) + 1
    status, merged_into, confidence = bytearray(size), array("q", bytes(8 * size)), array("d", bytes(8 * size))
    codes = " ".join(f"WHEN '{name}' THEN {code}" for name, code in _STATUS_CODES.items())
    rows = stream_rows(
        f"SELECT id, CAST(CASE status {codes} ELSE 0 END AS BIGINT), COALESCE(merged_into_id, 0), merge_confidence "  # noqa: S608
        f"FROM {PROFILES}",
        "qqqd",
    )
    count = 0
    for profile_id, profile_status, target, merge_confidence in rows:
        if profile_id >= len(status):  # created after max() was read (no snapshot on SQLite)
            grow = profile_id + 1 - len(status)
            status.extend(bytes(grow))
            _grow(merged_into, profile_id + 1, 0)
            _grow(confidence, profile_id + 1, 0.0)
        status[profile_id] = profile_status
        merged_into[profile_id] = target
        confidence[profile_id] = merge_confidence
        count += 1
    report.counts["profiles"] = count
    report.counts["active_profiles"] = status.count(1)
    return status, merged_into, confidence


def _check_merged_chains(status: bytearray, merged_into: array, found: _Collector) -> None:
    """Every merged profile leads through merged_into to an active one. Each chain is walked
    once: the outcome is remembered for every profile on it."""
    outcome: dict[int, str] = {}  # profile -> "" (reaches an active profile) or why not
    for start in range(len(status)):
        if status[start] != 2 or start in outcome:
            continue
        path, node, reason = [], start, None
        on_path = set()
        while True:
            if node in outcome:
                reason = outcome[node]
                break
            code = status[node] if node < len(status) else 0
            if code == 1:
                reason = ""
                break
            if code != 2:
                reason = f"profile {node} is {_STATUS_NAMES.get(code, 'missing')}"
                break
            if node in on_path:
                reason = f"merged_into loops back to profile {node}"
                break
            on_path.add(node)
            path.append(node)
            target = merged_into[node]
            if not target:
                reason = f"profile {node} has no merged_into"
                break
            node = target
        for member in path:
            outcome[member] = reason
        if reason:
            for member in path:
                found.violation(
                    "merged_profile_not_resolved", f"merged profile {member} leads to no active profile: {reason}"
                )


def _load_identifiers(report: GraphReport, status: bytearray, found: _Collector) -> tuple[array, bytearray]:
    size = _max_id(IDENTIFIERS) + 1
    owner = array("q", [-1]) * size
    has_identifier = bytearray(len(status))
    count = 0
    for identifier_id, profile_id in stream_rows(f"SELECT id, profile_id FROM {IDENTIFIERS}", "qq"):  # noqa: S608
        if identifier_id >= len(owner):
            _grow(owner, identifier_id + 1, -1)
        owner[identifier_id] = profile_id
        count += 1
        code = status[profile_id] if profile_id < len(status) else 0
        if code != 1:
            found.violation(
                "identifier_on_inactive_profile",
                f"identifier {identifier_id} belongs to {_STATUS_NAMES.get(code, 'missing')} profile {profile_id}",
            )
        if profile_id < len(has_identifier):
            has_identifier[profile_id] = 1
    report.counts["identifiers"] = count
    return owner, has_identifier


def _link_components(report: GraphReport, owner: array, found: _Collector) -> tuple[array, array, set[int]]:
    """Union-find over active links, strongest links first: the confidence of a component's last
    union is then the bottleneck of its maximum spanning tree (the weakest link holding it)."""
    by_confidence: dict[float, tuple[array, array]] = {}
    crossing: set[int] = set()
    count = 0
    rows = stream_rows(
        f"SELECT from_identifier_id, to_identifier_id, confidence FROM {LINKS} "  # noqa: S608
        f"WHERE status = '{IdentityLink.ACTIVE}'",
        "qqd",
    )
    for a, b, link_confidence in rows:
        count += 1
        pair = by_confidence.get(link_confidence)
        if pair is None:
            pair = by_confidence[link_confidence] = (array("q"), array("q"))
        pair[0].append(a)
        pair[1].append(b)
        if owner[a] != owner[b]:
            crossing.update((owner[a], owner[b]))
            found.violation("link_crosses_profiles", f"active link {a}-{b} crosses profiles {owner[a]} and {owner[b]}")
    parent = array("q", range(len(owner)))
    bottleneck = array("d", [float("inf")]) * len(owner)
    unions = 0
    for link_confidence in sorted(by_confidence, reverse=True):
        froms, tos = by_confidence.pop(link_confidence)
        for a, b in zip(froms, tos, strict=True):
            a, b = find_root(parent, a), find_root(parent, b)
            if a == b:
                continue
            unions += 1
            root, other = (a, b) if a < b else (b, a)
            parent[other] = root
            bottleneck[root] = min(bottleneck[root], bottleneck[other], link_confidence)
    report.counts["active_links"] = count
    report.counts["components"] = report.counts["identifiers"] - unions
    return parent, bottleneck, crossing


def _check_profiles(report, status, confidence, owner, has_identifier, parent, bottleneck, crossing, found) -> None:
    first_root = array("q", [-1]) * len(status)
    split: set[int] = set()
    for identifier_id in range(len(owner)):
        profile_id = owner[identifier_id]
        if profile_id < 0 or profile_id >= len(first_root):
            continue
        root = find_root(parent, identifier_id)
        seen = first_root[profile_id]
        if seen < 0:
            first_root[profile_id] = root
        elif seen != root:
            split.add(profile_id)
    if split:
        roots: dict[int, set[int]] = defaultdict(set)
        for identifier_id in range(len(owner)):
            if owner[identifier_id] in split:
                roots[owner[identifier_id]].add(find_root(parent, identifier_id))
        for profile_id in sorted(split):
            found.violation(
                "profile_split",
                f"profile {profile_id}: its identifiers form {len(roots[profile_id])} components over active links "
                f"(smallest identifier of each: {', '.join(map(str, sorted(roots[profile_id])))})",
            )
    for profile_id in range(len(status)):
        if status[profile_id] != 1:
            continue
        if not has_identifier[profile_id]:
            found.warning("profile_without_identifiers", f"active profile {profile_id} holds no identifiers")
            continue
        if profile_id in split or profile_id in crossing:
            continue
        weakest = bottleneck[first_root[profile_id]]
        expected = 1.0 if weakest == float("inf") else weakest
        if abs(confidence[profile_id] - expected) > 1e-9:
            found.warning(
                "merge_confidence_differs",
                f"profile {profile_id}: merge_confidence {confidence[profile_id]:g}, but the weakest link holding it "
                f"together has confidence {expected:g}",
            )


def _check_events(report: GraphReport, found: _Collector) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {EVENTS}")  # noqa: S608
        report.counts["events"] = cursor.fetchone()[0]
        # Driven from the (few) inactive profiles through the events' profile index.
        cursor.execute(
            f"SELECT e.profile_id, p.status, COUNT(*) FROM {EVENTS} e JOIN {PROFILES} p ON p.id = e.profile_id "  # noqa: S608
            f"WHERE p.status <> %s GROUP BY e.profile_id, p.status ORDER BY e.profile_id",
            [Profile.ACTIVE],
        )
        for profile_id, profile_status, n in cursor.fetchall():
            noun = "event belongs" if n == 1 else "events belong"
            found.violation("event_on_inactive_profile", f"{n} {noun} to {profile_status} profile {profile_id}")
        # The unique constraint should make this impossible; it is what "no event duplicated" means.
        cursor.execute(
            f"SELECT raw_event_id, sequence, COUNT(*) FROM {EVENTS} GROUP BY raw_event_id, sequence "  # noqa: S608
            "HAVING COUNT(*) > 1 ORDER BY raw_event_id, sequence"
        )
        for raw_event_id, sequence, n in cursor.fetchall():
            found.violation("event_duplicated", f"raw event {raw_event_id} sequence {sequence} has {n} events")


# -- rebuild --------------------------------------------------------------------------------

COMPONENT_TABLE = "identity_graph_component"  # identifier -> component, as computed now
AFFECTED_TABLE = "identity_graph_affected"  # components whose materialisation disagrees
TARGET_TABLE = "identity_graph_target"  # affected component -> the profile it is given
VACATED_TABLE = "identity_graph_vacated"  # (old profile, new profile, identifiers moved)
REBUILD_WORK_MEM = "256MB"  # per sort or hash, for this one transaction only


@dataclass
class RebuildReport:
    identifiers: int = 0
    active_links: int = 0
    components: int = 0
    spread_components: int = 0  # one component, identifiers on several profiles
    split_profiles: int = 0  # one profile, identifiers in several components
    inactive_profile_components: int = 0  # identifiers on merged or deleted profiles
    affected_components: int = 0
    is_applied: bool = False
    identifiers_moved: int = 0
    events_moved: int = 0
    trait_values_moved: int = 0
    profiles_recomputed: int = 0
    profiles_created: int = 0
    profiles_merged: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def is_consistent(self) -> bool:
        return self.affected_components == 0

    def as_dict(self) -> dict:
        return {**asdict(self), "is_consistent": self.is_consistent}


def identity_graph_rebuild(*, apply: bool) -> RebuildReport:
    """Recompute every component over active links and compare it with Identifier.profile.

    With `apply`, repair the disagreement in set-based SQL: each affected component's identifiers
    (and the events they carry) go to one active profile, the one holding most of them (lowest id
    on ties, each profile to one component at most; a component left without one gets a new
    profile), and profiles left without identifiers are merged into the profile that took most of
    theirs. Materialised traits and merge_confidence of the profiles involved are not recomputed.
    """
    report = RebuildReport(is_applied=apply)
    clock = _Clock(report.seconds)
    # Not read-only even as a dry run: it writes its temporary tables.
    with _transaction(lock=apply, read_only=False):
        if connection.vendor == "postgresql":
            # The comparison groups a million-row join twice; with the default 4 MB the hash
            # aggregates spill to disk (measured: 4.0 s -> 2.6 s at 1M identifiers).
            _execute(f"SET LOCAL work_mem = '{REBUILD_WORK_MEM}'")
        _drop_temporary_tables()
        size = _max_id(IDENTIFIERS) + 1
        identifier_ids = array("q")
        for (ids,) in stream_columns(f"SELECT id FROM {IDENTIFIERS}", "q"):  # noqa: S608
            identifier_ids.extend(ids)
        froms, tos = array("q"), array("q")
        for block_froms, block_tos in stream_columns(
            f"SELECT from_identifier_id, to_identifier_id FROM {LINKS} WHERE status = '{IdentityLink.ACTIVE}'",  # noqa: S608
            "qq",
        ):
            froms.extend(block_froms)
            tos.extend(block_tos)
        report.identifiers, report.active_links = len(identifier_ids), len(froms)
        clock.lap("stream_out")

        size = max(size, (max(identifier_ids) + 1) if identifier_ids else 0)
        parent = array("q", range(size))
        unions = union_edges(parent, zip(froms, tos, strict=True))
        del froms, tos
        report.components = report.identifiers - unions
        clock.lap("components")

        _execute(f"CREATE TEMPORARY TABLE {COMPONENT_TABLE} (identifier_id bigint NOT NULL, component bigint NOT NULL)")
        load_rows(
            COMPONENT_TABLE,
            ["identifier_id", "component"],
            ["int8", "int8"],
            ((i, find_root(parent, i)) for i in identifier_ids),
        )
        del parent, identifier_ids
        # Temporary tables are never analysed automatically; without statistics the joins below
        # are planned for an empty table.
        _execute(f"ANALYZE {COMPONENT_TABLE}")
        clock.lap("copy_in")

        _find_affected(report)
        clock.lap("compare")
        if apply and report.affected_components:
            _repair(report)
            clock.lap("repair")
        _drop_temporary_tables()
    report.seconds["total"] = sum(report.seconds.values())
    logger.info("identity_graph_rebuilt %s", {k: v for k, v in report.as_dict().items() if k != "seconds"})
    return report


class _Clock:
    def __init__(self, laps: dict[str, float]):
        self.laps, self.last = laps, time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = self.laps.get(name, 0.0) + now - self.last
        self.last = now


def _drop_temporary_tables() -> None:
    for table in (COMPONENT_TABLE, AFFECTED_TABLE, TARGET_TABLE, VACATED_TABLE):
        _execute(f"DROP TABLE IF EXISTS {table}")


def _find_affected(report: RebuildReport) -> None:
    """In SQL: the components whose identifiers are not all on one active profile of their own."""
    inactive = f"SELECT id FROM {PROFILES} WHERE status <> '{Profile.ACTIVE}'"  # noqa: S608
    _execute(
        f"CREATE TEMPORARY TABLE {AFFECTED_TABLE} AS "  # noqa: S608
        f"WITH assignment AS MATERIALIZED ("
        f"  SELECT g.component, i.profile_id FROM {COMPONENT_TABLE} g JOIN {IDENTIFIERS} i ON i.id = g.identifier_id"
        f"), spread AS ("
        f"  SELECT component FROM assignment GROUP BY component HAVING MIN(profile_id) <> MAX(profile_id)"
        f"), split_profile AS ("
        f"  SELECT profile_id FROM assignment GROUP BY profile_id HAVING MIN(component) <> MAX(component)"
        f"), split AS ("
        f"  SELECT DISTINCT a.component FROM assignment a JOIN split_profile s ON s.profile_id = a.profile_id"
        f"), on_inactive AS ("
        f"  SELECT DISTINCT component FROM assignment WHERE profile_id IN ({inactive})"
        f") "
        f"SELECT c.component,"
        f" EXISTS (SELECT 1 FROM spread s WHERE s.component = c.component) AS is_spread,"
        f" EXISTS (SELECT 1 FROM on_inactive o WHERE o.component = c.component) AS is_on_inactive "
        f"FROM (SELECT component FROM spread UNION SELECT component FROM split "
        f"      UNION SELECT component FROM on_inactive) c"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*), COALESCE(SUM(CASE WHEN is_spread THEN 1 ELSE 0 END), 0), "  # noqa: S608
            f"COALESCE(SUM(CASE WHEN is_on_inactive THEN 1 ELSE 0 END), 0) FROM {AFFECTED_TABLE}"
        )
        report.affected_components, report.spread_components, report.inactive_profile_components = cursor.fetchone()
        if report.affected_components:
            cursor.execute(
                f"SELECT COUNT(*) FROM (SELECT i.profile_id FROM {COMPONENT_TABLE} g "  # noqa: S608
                f"JOIN {AFFECTED_TABLE} f ON f.component = g.component JOIN {IDENTIFIERS} i ON i.id = g.identifier_id "
                f"GROUP BY i.profile_id HAVING MIN(g.component) <> MAX(g.component)) s"
            )
            report.split_profiles = cursor.fetchone()[0]


def _repair(report: RebuildReport) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT component FROM {AFFECTED_TABLE} ORDER BY component")  # noqa: S608
        affected = [row[0] for row in cursor.fetchall()]
        cursor.execute(
            f"SELECT g.component, i.profile_id, COUNT(*) FROM {COMPONENT_TABLE} g "  # noqa: S608
            f"JOIN {AFFECTED_TABLE} f ON f.component = g.component "
            f"JOIN {IDENTIFIERS} i ON i.id = g.identifier_id "
            f"JOIN {PROFILES} p ON p.id = i.profile_id AND p.status = %s "
            f"GROUP BY g.component, i.profile_id",
            [Profile.ACTIVE],
        )
        candidates = cursor.fetchall()
    # Greedy on (most identifiers, lowest profile id): each component takes its best profile
    # still free, so two components never share one (a split profile keeps its largest part).
    targets: dict[int, int] = {}
    taken: set[int] = set()
    for component, profile_id, _n in sorted(candidates, key=lambda c: (-c[2], c[1], c[0])):
        if component not in targets and profile_id not in taken:
            targets[component] = profile_id
            taken.add(profile_id)
    homeless = [component for component in affected if component not in targets]
    if homeless:
        now = timezone.now()
        rows = Profile.objects.bulk_create([Profile(created_at=now, updated_at=now) for _ in homeless], batch_size=500)
        for component, profile in zip(homeless, rows, strict=True):
            targets[component] = profile.pk
        report.profiles_created = len(homeless)

    _execute(f"CREATE TEMPORARY TABLE {TARGET_TABLE} (component bigint NOT NULL, profile_id bigint NOT NULL)")
    load_rows(TARGET_TABLE, ["component", "profile_id"], ["int8", "int8"], sorted(targets.items()))
    _execute(f"ANALYZE {TARGET_TABLE}")
    moves = (
        f"SELECT g.identifier_id, t.profile_id FROM {COMPONENT_TABLE} g "  # noqa: S608
        f"JOIN {TARGET_TABLE} t ON t.component = g.component"
    )
    _execute(
        f"CREATE TEMPORARY TABLE {VACATED_TABLE} AS "  # noqa: S608
        f"SELECT i.profile_id AS old_profile_id, m.profile_id AS new_profile_id, COUNT(*) AS n "
        f"FROM ({moves}) m JOIN {IDENTIFIERS} i ON i.id = m.identifier_id "
        f"WHERE i.profile_id <> m.profile_id GROUP BY i.profile_id, m.profile_id"
    )
    report.identifiers_moved = _execute(
        f"UPDATE {IDENTIFIERS} SET profile_id = m.profile_id FROM ({moves}) m "  # noqa: S608
        f"WHERE {IDENTIFIERS}.id = m.identifier_id AND {IDENTIFIERS}.profile_id <> m.profile_id"
    )
    # An event belongs to the profile of the identifier it arrived with.
    report.events_moved = _execute(
        f"UPDATE {EVENTS} SET profile_id = m.profile_id FROM ({moves}) m "  # noqa: S608
        f"WHERE {EVENTS}.identifier_id = m.identifier_id AND {EVENTS}.profile_id <> m.profile_id"
    )
    report.trait_values_moved = _execute(
        f"UPDATE {TRAIT_VALUES} SET profile_id = m.profile_id FROM ({moves}) m "  # noqa: S608
        f"WHERE {TRAIT_VALUES}.identifier_id = m.identifier_id AND {TRAIT_VALUES}.profile_id <> m.profile_id"
    )
    # Profiles left without identifiers are merged into the profile that took most of theirs; the
    # merge moves whatever they still hold (events without an identifier, trait values, consent).
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT v.old_profile_id, v.new_profile_id, v.n FROM {VACATED_TABLE} v "  # noqa: S608
            f"WHERE NOT EXISTS (SELECT 1 FROM {IDENTIFIERS} i WHERE i.profile_id = v.old_profile_id) "
            f"ORDER BY v.old_profile_id, v.n DESC, v.new_profile_id"
        )
        successors: dict[int, int] = {}
        for old_profile_id, new_profile_id, _n in cursor.fetchall():
            successors.setdefault(old_profile_id, new_profile_id)
    _merge_vacated(sorted(successors.items()))
    report.profiles_merged = len(successors)
    # Every profile that gained or lost rows gets its traits, consent, revenue and confidence
    # rebuilt from what it now holds (one profile at a time: repairs touch few).
    from profiles.services.recompute import profile_recompute

    touched = sorted(set(targets.values()) | (set(_vacated_sources()) - set(successors)))
    for profile_id in touched:
        if Profile.objects.filter(pk=profile_id, status=Profile.ACTIVE).exists():
            profile_recompute(profile_id=profile_id)
            report.profiles_recomputed += 1


def _vacated_sources() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT DISTINCT old_profile_id FROM {VACATED_TABLE}")  # noqa: S608
        return [row[0] for row in cursor.fetchall()]


def _merge_vacated(moves: list[tuple[int, int]]) -> None:
    from profiles.services.moves import profile_rows_move_many

    # Targets are never vacated themselves, so the moves form no chains and chunking is safe;
    # chunks keep each statement under PostgreSQL's 65,535 bound parameters.
    now = timezone.now()
    for start in range(0, len(moves), 10_000):
        chunk = moves[start : start + 10_000]
        moved = profile_rows_move_many(moves=chunk)
        # Audited like any merge (no link: the graph itself decided), so it can be reviewed.
        Merge.objects.bulk_create(
            [
                Merge(
                    survivor_id=survivor,
                    absorbed_id=absorbed,
                    rule=REBUILD_RULE,
                    actor=f"rule:{REBUILD_RULE}",
                    evidence={"reason": "identity graph rebuild: the profile's identifiers belong to another"},
                    moved=moved.get(absorbed, {}),
                    created_at=now,
                )
                for absorbed, survivor in chunk
            ],
            batch_size=1000,
        )

"""Monthly partitions of the events table on PostgreSQL.

`profiles_event` is partitioned by range of `occurred_at`, one partition per calendar month (UTC),
plus a default partition that catches what no month holds (a sender's clock in 1970 or 2090, a
backfill older than the partitions). Queries that bound `occurred_at` (segments, computed traits,
triggers) read only the months they name; per-profile reads probe each month's small index.

PostgreSQL requires the partition key in every unique index, so the primary key is
(id, occurred_at) and the idempotency constraint is (raw_event_id, sequence, occurred_at): a raw
event maps to the same occurred_at every time it is processed, so it still cannot yield an event
twice. Django keeps `id` as the model's primary key; ids come from one identity sequence.

A daily task keeps EVENT_PARTITION_MONTHS_AHEAD months ready and moves any month that gathered
EVENT_PARTITION_SPLIT_MIN_ROWS rows in the default partition into a partition of its own. On
SQLite the table is a plain table and every function here does nothing.
"""

# ruff: noqa: S608 - every name in this SQL is a constant or a partition name built from a date

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

PARENT = "profiles_event"
DEFAULT = "profiles_event_default"
MONTH_NAME = re.compile(r"^profiles_event_p(\d{4})(\d{2})$")
# Months of data given a partition of their own when the table is converted or a month is split
# out of the default partition: older rows stay in the default partition.
HISTORY_YEARS = 10


@dataclass(frozen=True)
class Partition:
    name: str
    start: datetime | None  # None: the default partition
    end: datetime | None
    rows: int  # the planner's estimate (pg_class.reltuples; -1 before any ANALYZE), or the exact count
    bytes: int


@dataclass
class MaintenanceResult:
    created: list[str] = field(default_factory=list)
    moved_rows: int = 0

    def as_dict(self) -> dict:
        return {"created": self.created, "moved_rows": self.moved_rows}


def month_start(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def add_months(start: datetime, months: int) -> datetime:
    index = start.year * 12 + start.month - 1 + months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def partition_name(start: datetime) -> str:
    return f"{PARENT}_p{start:%Y%m}"


def is_partitioned(using=None) -> bool:
    conn = using or connection
    if conn.vendor != "postgresql":
        return False
    with conn.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [PARENT])
        row = cursor.fetchone()
    return bool(row) and row[0] == "p"


def event_partitions(*, exact: bool = False) -> list[Partition]:
    """The partitions, oldest month first, the default partition last."""
    if not is_partitioned():
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, c.reltuples::bigint, pg_total_relation_size(c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(%s) ORDER BY c.relname",
            [PARENT],
        )
        rows = cursor.fetchall()
        partitions = []
        for name, estimate, size in rows:
            if exact:
                cursor.execute(f'SELECT count(*) FROM "{name}"')
                estimate = cursor.fetchone()[0]
            match = MONTH_NAME.match(name)
            start = datetime(int(match[1]), int(match[2]), 1, tzinfo=UTC) if match else None
            end = add_months(start, 1) if start else None
            partitions.append(Partition(name, start, end, int(estimate), size))
    return sorted(partitions, key=lambda p: (p.start is None, p.start or datetime.min.replace(tzinfo=UTC)))


def ensure_event_partitions(
    *, since: datetime | None = None, months_ahead: int | None = None, split_min_rows: int | None = None
) -> MaintenanceResult:
    """Create the missing monthly partitions from `since` (default: this month) through
    `months_ahead` months ahead, and split out of the default partition every month holding at
    least `split_min_rows` rows. Safe to run twice and concurrently (one transaction per month,
    serialised by a lock on the default partition)."""
    result = MaintenanceResult()
    if not is_partitioned():
        return result
    now = timezone.now()
    months_ahead = settings.EVENT_PARTITION_MONTHS_AHEAD if months_ahead is None else months_ahead
    split_min_rows = settings.EVENT_PARTITION_SPLIT_MIN_ROWS if split_min_rows is None else split_min_rows
    wanted = set()
    start, last = month_start(since or now), add_months(month_start(now), months_ahead)
    while start <= last:
        wanted.add(start)
        start = add_months(start, 1)
    wanted |= set(_crowded_default_months(split_min_rows, now))
    existing = {p.start for p in event_partitions() if p.start}
    for start in sorted(wanted - existing):
        moved = _create_month(start)
        if moved is not None:
            result.created.append(partition_name(start))
            result.moved_rows += moved
    if result.moved_rows:
        analyze_events()
    return result


def analyze_events() -> None:
    """Autovacuum analyses each partition but never the partitioned parent, whose statistics the
    planner uses for whole-table estimates (PostgreSQL docs, "Partitioning and ANALYZE")."""
    if is_partitioned():
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {PARENT}")


def _crowded_default_months(min_rows: int, now: datetime) -> list[datetime]:
    oldest = add_months(month_start(now), -12 * HISTORY_YEARS)
    newest = add_months(month_start(now), 12)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT date_trunc('month', occurred_at, 'UTC') FROM {DEFAULT} "
            "WHERE occurred_at >= %s AND occurred_at < %s GROUP BY 1 HAVING count(*) >= %s",
            [oldest, newest, max(min_rows, 1)],
        )
        return [month_start(row[0]) for row in cursor.fetchall()]


def _create_month(start: datetime) -> int | None:
    """One month's partition, built beside the table and attached, with that month's rows moved
    out of the default partition first. Returns the rows moved, or None if it already existed."""
    name, end = partition_name(start), add_months(start, 1)
    with transaction.atomic(), connection.cursor() as cursor:
        # Blocks inserts into the default partition until commit, so no row of this month can
        # land there between the move and the attach (which would then fail).
        cursor.execute(f"LOCK TABLE {DEFAULT} IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        if cursor.fetchone()[0]:
            return None
        cursor.execute(f'CREATE TABLE "{name}" (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)')
        cursor.execute(
            f"WITH moved AS (DELETE FROM {DEFAULT} WHERE occurred_at >= %s AND occurred_at < %s RETURNING *) "
            f'INSERT INTO "{name}" SELECT * FROM moved',
            [start, end],
        )
        moved = cursor.rowcount
        # The CHECK lets ATTACH skip scanning the new partition; it is dropped once attached.
        check = f"{name}_range"
        cursor.execute(
            f'ALTER TABLE "{name}" ADD CONSTRAINT "{check}" CHECK (occurred_at >= %s AND occurred_at < %s)',
            [start, end],
        )
        cursor.execute(f'ALTER TABLE {PARENT} ATTACH PARTITION "{name}" FOR VALUES FROM (%s) TO (%s)', [start, end])
        cursor.execute(f'ALTER TABLE "{name}" DROP CONSTRAINT "{check}"')
    return max(moved, 0)


# -- conversion (the migration) --------------------------------------------------------------------


def convert_table(schema_editor, *, partitioned: bool, months_ahead: int = 3) -> None:
    """Rebuild profiles_event as a partitioned table (or back to a plain one), keeping its rows,
    ids, column order, index and constraint names. PostgreSQL only; the caller is a migration."""
    if schema_editor.connection.vendor != "postgresql" or is_partitioned(schema_editor.connection) == partitioned:
        return
    with schema_editor.connection.cursor() as cursor:
        # Deferred foreign-key checks of rows written earlier in this transaction would block DROP.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = to_regclass(%s) AND contype = 'f' ORDER BY conname",
            [PARENT],
        )
        foreign_keys = cursor.fetchall()
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND schemaname = current_schema() "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(%s)) "
            "ORDER BY indexname",
            [PARENT, PARENT],
        )
        indexes = cursor.fetchall()
        new = f"{PARENT}_rebuilt"
        suffix = " PARTITION BY RANGE (occurred_at)" if partitioned else ""
        cursor.execute(
            f"CREATE TABLE {new} (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING CONSTRAINTS){suffix}"
        )
        if partitioned:
            cursor.execute(f"CREATE TABLE {DEFAULT} PARTITION OF {new} DEFAULT")
            now = timezone.now()
            cursor.execute(
                f"SELECT DISTINCT date_trunc('month', occurred_at, 'UTC') FROM {PARENT} "
                "WHERE occurred_at >= %s AND occurred_at < %s",
                [add_months(month_start(now), -12 * HISTORY_YEARS), add_months(month_start(now), 12)],
            )
            months = {month_start(row[0]) for row in cursor.fetchall()}
            months |= {add_months(month_start(now), n) for n in range(months_ahead + 1)}
            for start in sorted(months):
                cursor.execute(
                    f'CREATE TABLE "{partition_name(start)}" PARTITION OF {new} FOR VALUES FROM (%s) TO (%s)',
                    [start, add_months(start, 1)],
                )
        cursor.execute(f"INSERT INTO {new} SELECT * FROM {PARENT}")
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [new])
        sequence = cursor.fetchone()[0]
        cursor.execute(f"SELECT setval(%s, coalesce((SELECT max(id) FROM {new}), 0) + 1, false)", [sequence])
        cursor.execute(f"DROP TABLE {PARENT}")
        cursor.execute(f"ALTER TABLE {new} RENAME TO {PARENT}")
        cursor.execute(f"ALTER SEQUENCE {sequence} RENAME TO {PARENT}_id_seq")
        # The partition key belongs in every unique index of a partitioned table; the plain table
        # keeps Django's single-column primary key.
        primary_key = "id, occurred_at" if partitioned else "id"
        cursor.execute(f"ALTER TABLE {PARENT} ADD CONSTRAINT {PARENT}_pkey PRIMARY KEY ({primary_key})")
        cursor.execute(
            f"ALTER TABLE {PARENT} ADD CONSTRAINT event_unique_per_raw_event "
            "UNIQUE (raw_event_id, sequence, occurred_at)"
        )
        for _name, definition in indexes:
            # A partitioned table's index definition reads "ON ONLY"; here it is built in full.
            cursor.execute(definition.replace(" ON ONLY ", " ON ", 1))
        for name, definition in foreign_keys:
            cursor.execute(f'ALTER TABLE {PARENT} ADD CONSTRAINT "{name}" {definition}')
        cursor.execute(f"ANALYZE {PARENT}")

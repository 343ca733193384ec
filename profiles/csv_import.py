"""CSV backfills: a column mapping, validated up front, and a streaming import into raw events.

Rows become raw events of the CSV source (payload: the import id, line number and the row), so
they go through the same contracts, identity resolution and replay as every other event. The file
is read incrementally: memory stays flat whatever its size.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import transaction
from django.utils import timezone

from consent.domain import PURPOSE_SLUGS
from identity.models import IdentifierType
from profiles.ingest import IncomingEvent, raw_events_store
from profiles.models import CsvImport, EventContract, Source

CHUNK_ROWS = 500  # rows per insert: one statement carries them all as arrays, so memory follows this
DEFAULT_EVENT_TYPE = "customer.imported"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,99}$")


class MappingInvalid(ValueError):
    """The mapping cannot be used; `errors` lists what is wrong, one message per problem."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Progress:
    bytes_read: int
    bytes_total: int
    rows: int
    rejected: int
    started: float


def target_choices() -> list[str]:
    """Every target a column can map to, for forms and help texts."""
    identifier_slugs = sorted(IdentifierType.objects.values_list("slug", flat=True))
    return (
        ["ignore", "occurred_at", "external_id"]
        + [f"identifier:{slug}" for slug in identifier_slugs]
        + [f"consent:{purpose}" for purpose in sorted(PURPOSE_SLUGS)]
        + ["trait:<name>", "property:<name>"]
    )


def guess_target(column: str) -> str:
    """A first guess for the mapping form, from common column names."""
    key = re.sub(r"[^a-z0-9]+", "_", column.strip().lower()).strip("_")
    known = {
        "email": "identifier:email",
        "email_address": "identifier:email",
        "e_mail": "identifier:email",
        "phone": "identifier:phone",
        "mobile": "identifier:phone",
        "phone_number": "identifier:phone",
        "mobile_phone": "identifier:phone",
        "user_id": "identifier:user_id",
        "customer_id": "identifier:user_id",
        "first_name": "trait:first_name",
        "firstname": "trait:first_name",
        "last_name": "trait:last_name",
        "lastname": "trait:last_name",
        "surname": "trait:last_name",
        "name": "trait:name",
        "city": "trait:city",
        "postcode": "trait:postal_code",
        "postal_code": "trait:postal_code",
        "zip": "trait:postal_code",
        "country": "trait:country",
        "birthday": "trait:birthday",
        "date_of_birth": "trait:birthday",
        "created_at": "occurred_at",
        "date": "occurred_at",
        "timestamp": "occurred_at",
        "id": "external_id",
    }
    return known.get(key, f"trait:{key}" if key else "ignore")


def validate_mapping(*, header: list[str], spec: dict) -> dict:
    """Check a mapping against a file's header; return the normalised mapping or raise MappingInvalid."""
    errors = []
    columns = spec.get("columns")
    if not isinstance(columns, dict) or not columns:
        raise MappingInvalid(["the mapping needs at least one column"])
    identifier_slugs = set(IdentifierType.objects.values_list("slug", flat=True))
    contracts = set(EventContract.objects.filter(is_active=True).values_list("event_type", flat=True))
    event_type = spec.get("event_type") or DEFAULT_EVENT_TYPE
    if event_type not in contracts:
        errors.append(f"unknown event type {event_type!r}: choose one with a contract ({', '.join(sorted(contracts))})")
    tz_name = spec.get("timezone") or "UTC"
    try:
        ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        errors.append(f"unknown timezone {tz_name!r} (use an IANA name such as Europe/London)")
    normalised, singletons = {}, {}
    for column, target in columns.items():
        target = str(target).strip()
        if column not in header:
            errors.append(f"column {column!r} is not in the file (its columns: {', '.join(header)})")
            continue
        kind, _, name = target.partition(":")
        if target in ("ignore", "occurred_at", "external_id"):
            if target != "ignore" and target in singletons:
                errors.append(f"both {singletons[target]!r} and {column!r} map to {target}")
            singletons[target] = column
        elif kind == "identifier":
            if name not in identifier_slugs:
                errors.append(f"{column!r}: unknown identifier type {name!r} ({', '.join(sorted(identifier_slugs))})")
        elif kind == "consent":
            if name not in PURPOSE_SLUGS:
                errors.append(f"{column!r}: unknown consent purpose {name!r} ({', '.join(sorted(PURPOSE_SLUGS))})")
        elif kind in ("trait", "property"):
            if not _NAME.match(name):
                errors.append(f"{column!r}: {kind} name {name!r} must be letters, digits, _ or . (at most 100)")
        else:
            errors.append(f"{column!r}: unknown target {target!r}; use one of {', '.join(target_choices())}")
        normalised[column] = target
    if not any(target.startswith("identifier:") for target in normalised.values()):
        errors.append("map at least one column to an identifier (identifier:email, identifier:phone, ...)")
    if errors:
        raise MappingInvalid(errors)
    return {"columns": normalised, "event_type": event_type, "timezone": tz_name}


def read_header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        try:
            header = next(csv.reader(handle))
        except StopIteration:
            return []
        except (csv.Error, UnicodeDecodeError) as error:
            raise MappingInvalid([f"the file is not a readable UTF-8 CSV: {error}"]) from error
    return [column.strip() for column in header]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _CountingReader(io.RawIOBase):
    """Counts the bytes the CSV reader has consumed, for progress without seeking."""

    def __init__(self, handle):
        self.handle, self.count = handle, 0

    def readable(self):
        return True

    def readinto(self, buffer):
        data = self.handle.read(len(buffer))
        buffer[: len(data)] = data
        self.count += len(data)
        return len(data)


def csv_import_create(*, source: Source, path: Path, file_name: str, spec: dict, user=None) -> CsvImport:
    if source.kind != Source.CSV:
        raise MappingInvalid([f"source {source.slug!r} is a {source.kind} source; CSV rows go to a CSV source"])
    mapping = validate_mapping(header=read_header(path), spec=spec)
    return CsvImport.objects.create(
        source=source,
        file_name=file_name,
        file_path=str(path),
        file_sha256=file_sha256(path),
        mapping=mapping,
        bytes_total=path.stat().st_size,
        created_by=user,
    )


def csv_import_run(*, csv_import: CsvImport, on_progress: Callable[[Progress], None] | None = None) -> CsvImport:
    """Stream the file into raw events, in chunks, recording progress as it goes. Safe to run
    twice: rows keep their external ids, so a second run stores nothing new."""
    CsvImport.objects.filter(pk=csv_import.pk).update(status=CsvImport.RUNNING, error="")
    mapping = csv_import.mapping
    id_column = next((c for c, t in mapping["columns"].items() if t == "external_id"), None)
    started, rows, rejected = time.monotonic(), 0, 0
    path = Path(csv_import.file_path)
    try:
        with open(path, "rb") as raw_handle:
            counter = _CountingReader(raw_handle)
            text = io.TextIOWrapper(io.BufferedReader(counter), encoding="utf-8-sig", newline="")
            reader = csv.reader(text)
            header = [column.strip() for column in next(reader, [])]
            chunk = []
            for line_number, values in enumerate(reader, start=2):
                if not any(value.strip() for value in values):
                    continue
                if len(values) != len(header):
                    rejected += 1  # counted and reported; the row is malformed, not a person
                    continue
                row = dict(zip(header, values, strict=True))
                external_id = (row.get(id_column) or "").strip() if id_column else ""
                chunk.append(
                    IncomingEvent(
                        external_id=external_id or f"{csv_import.file_sha256[:16]}:{line_number}",
                        payload={"import_id": csv_import.pk, "line": line_number, "row": row},
                        topic=mapping["event_type"],
                    )
                )
                rows += 1
                if len(chunk) >= CHUNK_ROWS:
                    _flush(csv_import, chunk, counter.count, rows, rejected, started, on_progress)
                    chunk = []
            _flush(csv_import, chunk, counter.count, rows, rejected, started, on_progress)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        CsvImport.objects.filter(pk=csv_import.pk).update(
            status=CsvImport.FAILED, error=f"line {rows + rejected + 2}: {error}", finished_at=timezone.now()
        )
        csv_import.refresh_from_db()
        return csv_import
    CsvImport.objects.filter(pk=csv_import.pk).update(
        status=CsvImport.COMPLETED, bytes_read=csv_import.bytes_total, finished_at=timezone.now()
    )
    csv_import.refresh_from_db()
    return csv_import


def _flush(csv_import, chunk, bytes_read, rows, rejected, started, on_progress) -> None:
    if chunk:
        with transaction.atomic():
            raw_events_store(source=csv_import.source, events=chunk)
    CsvImport.objects.filter(pk=csv_import.pk).update(bytes_read=bytes_read, rows_read=rows, rows_rejected=rejected)
    if on_progress:
        on_progress(Progress(bytes_read, csv_import.bytes_total, rows, rejected, started))

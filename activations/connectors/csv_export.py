"""CSV export: append one row per intended operation to a file per destination and audience.

Not HTTP: `prepare` builds an `APPEND` request whose body is the rows (so a dry run shows them) and
`deliver` writes them under the setting `directory`, answering with a locally built response.

Resending is harmless: a sidecar file `<name>.csv.keys` lists the idempotency keys already written,
and rows whose key is there are not written again. The sidecar also records the CSV's size after
each write; if a write reached the CSV but not the sidecar (a crash in between), the rows past that
size are read back on the next delivery, so their keys still count as written.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from pathlib import Path

import httpx
from django.conf import settings as django_settings

from activations import domain
from activations.connectors.base import Connector, Outbound, PreparedRequest, RecordResult, excerpt

try:  # POSIX: writers of the same file take turns
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

FIXED_COLUMNS = ("idempotency_key", "operation", "key")
APPEND, CHECK = "APPEND", "CHECK"


def cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str, sort_keys=True)
    return str(value)


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "export"


def _keys_in_csv(path: Path, offset: int) -> set[str]:
    """Idempotency keys (first column) of the rows from byte `offset` on; the header is skipped."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        text = handle.read().decode("utf-8", "replace")
    keys = {row[0] for row in csv.reader(io.StringIO(text, newline="")) if row}
    keys.discard(FIXED_COLUMNS[0])
    return keys


def _response(status: int, body: dict, request: PreparedRequest) -> httpx.Response:
    return httpx.Response(status, json=body, request=httpx.Request(request.method, request.url))


class CsvExportConnector(Connector):
    kind = "csv_export"
    label = "CSV file export"
    max_batch_size = 1000
    default_rate_limit = 1000.0  # local disk
    operations = frozenset({domain.UPSERT, domain.UPDATE, domain.REMOVE, domain.DELETE})
    channel = "file"
    secret_headers = frozenset()
    deletion = (
        "a row with operation 'delete' and the person's key is appended; whoever consumes the file deletes "
        "the person. Rows written earlier stay in files already exported: purge them where they were copied"
    )

    @property
    def base_url(self) -> str:
        return ""

    @property
    def directory(self) -> Path:
        configured = self.settings.get("directory")
        return Path(configured) if configured else Path(django_settings.VAR_DIR) / "exports"

    def columns(self) -> list[str]:
        return [*FIXED_COLUMNS, *(field.name for field in self.destination.contract)]

    def path_for(self, audience: str) -> Path:
        name = safe_name(self.destination.slug) + (f"-{safe_name(audience)}" if audience else "")
        return self.directory / f"{name}.csv"

    def check_configuration(self) -> list[str]:
        problems = super().check_configuration()
        directory = self.directory
        if directory.exists() and not directory.is_dir():
            problems.append(f"{directory} is not a directory")
        return problems

    # -- requests -------------------------------------------------------------------------------
    def prepare(self, operation: str, records: list[Outbound]) -> list[PreparedRequest]:
        if operation not in self.operations:
            raise domain.ContractViolation(f"{self.label} cannot {operation}")
        columns = self.columns()
        groups: dict[str, list[Outbound]] = {}
        for record in records:
            groups.setdefault(record.audience, []).append(record)
        requests = []
        for audience, group in groups.items():
            path = self.path_for(audience)
            for start in range(0, len(group), self.batch_size):
                chunk = group[start : start + self.batch_size]
                rows = [
                    [record.idempotency_key, operation, cell(record.key)]
                    + [cell(record.fields.get(name)) for name in columns[len(FIXED_COLUMNS) :]]
                    for record in chunk
                ]
                requests.append(
                    PreparedRequest(
                        method=APPEND,
                        url=path.as_uri() if path.is_absolute() else str(path),
                        record_ids=[record.id for record in chunk],
                        json={"file": str(path), "columns": columns, "rows": rows},
                    )
                )
        return requests

    def test_request(self) -> PreparedRequest:
        directory = self.directory
        return PreparedRequest(
            method=CHECK,
            url=directory.as_uri() if directory.is_absolute() else str(directory),
            record_ids=[],
            json={"directory": str(directory)},
        )

    # -- writing --------------------------------------------------------------------------------
    def deliver(self, client: httpx.Client, request: PreparedRequest, timeout: float) -> httpx.Response:
        try:
            if request.method == CHECK:
                return _response(200, self._check(Path(request.json["directory"])), request)
            if request.method == APPEND:
                return _response(200, self._append(request), request)
            return _response(405, {"error": f"unknown method {request.method}"}, request)
        except PermissionError as error:
            return _response(403, {"error": f"{type(error).__name__}: {error}"}, request)
        except OSError as error:  # disk full, I/O error: worth trying again later
            return _response(503, {"error": f"{type(error).__name__}: {error}"}, request)

    @staticmethod
    def _check(directory: Path) -> dict:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".cdp-write-test-"):
            pass
        return {"directory": str(directory), "writable": True}

    def _append(self, request: PreparedRequest) -> dict:
        path = Path(request.json["file"])
        columns, rows = request.json["columns"], request.json["rows"]
        path.parent.mkdir(parents=True, exist_ok=True)
        keys_path = path.with_name(path.name + ".keys")
        with open(keys_path, "a+", encoding="utf-8") as sidecar:
            if fcntl is not None:
                fcntl.flock(sidecar, fcntl.LOCK_EX)
            written, checkpoint = self._read_sidecar(sidecar)
            size = path.stat().st_size if path.exists() else 0
            if size > checkpoint or (size and size < checkpoint):
                # Rows the sidecar has not recorded (or a file rotated away and started anew).
                written |= _keys_in_csv(path, checkpoint if size > checkpoint else 0)
            fresh, duplicates = [], []
            for rid, row in zip(request.record_ids, rows, strict=True):
                if row[0] in written:
                    duplicates.append(rid)
                else:
                    written.add(row[0])
                    fresh.append(row)
            if fresh:
                with open(path, "a", newline="", encoding="utf-8") as handle:
                    writer = csv.writer(handle)
                    if size == 0:
                        writer.writerow(columns)
                    writer.writerows(fresh)
                    handle.flush()
                    os.fsync(handle.fileno())
            new_size = path.stat().st_size if path.exists() else 0
            lines = [json.dumps(["k", row[0]]) for row in fresh] + [json.dumps(["s", new_size])]
            sidecar.write("\n".join(lines) + "\n")
            sidecar.flush()
        return {"file": str(path), "written": len(fresh), "already_written": duplicates}

    @staticmethod
    def _read_sidecar(sidecar) -> tuple[set[str], int]:
        sidecar.seek(0)
        keys, checkpoint = set(), 0
        for line in sidecar.read().splitlines():
            try:
                kind, value = json.loads(line)
            except (ValueError, TypeError):
                continue  # a line cut short by a crash
            if kind == "k":
                keys.add(value)
            elif kind == "s":
                checkpoint = int(value)
        return keys, checkpoint

    # -- answers --------------------------------------------------------------------------------
    def parse(self, request: PreparedRequest, response: httpx.Response) -> list[RecordResult]:
        status = response.status_code
        if not (200 <= status < 300):
            message = excerpt(response)
            return [RecordResult(id=rid, ok=False, status_code=status, message=message) for rid in request.record_ids]
        try:
            body = response.json()
        except ValueError:
            body = {}
        again = set(body.get("already_written") or [])
        file = body.get("file", "")
        return [
            RecordResult(
                id=rid,
                ok=True,
                status_code=status,
                message=f"already in {file}" if rid in again else f"written to {file}",
            )
            for rid in request.record_ids
        ]

"""Re-encrypt every encrypted column under the newest PII key.

    manage.py rotate_pii_keys [--dry-run] [--batch-size N]

Rotating the PII key:
1. Generate a key (Fernet.generate_key()) and put it first in PII_ENCRYPTION_KEYS, the old keys after
   it; deploy. New values are encrypted with it; old values still decrypt with the old keys.
2. Run this command once every process runs the new setting. It re-encrypts every value not yet
   under the newest key, in batches of one transaction each, and can be stopped and run again.
3. When a run reports nothing left to re-encrypt, remove the old keys from the setting.

Blind indexes (PII_BLIND_INDEX_KEY) and tombstones (TOMBSTONE_KEY) are keyed separately and do not
change, so lookups (search by email, identity resolution) keep working throughout.

Columns are found, not listed: every concrete field that is a consent.fields.EncryptedTextField (or
a subclass, or any field declaring `stores_fernet_tokens = True`), plus the columns below that hold
Fernet tokens in a plain text field. A model added later is covered without touching this command.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, models, transaction

from consent.fields import EncryptedTextField

BATCH_SIZE = 1000
# Plain text fields whose values are Fernet tokens written by hand (see Identifier.stored_values).
TOKEN_COLUMNS = {("identity.identifier", "encrypted_value"), ("consent.sealedvalue", "ciphertext")}
MAX_REPORTED_IDS = 10


@dataclass
class ColumnReport:
    label: str
    scanned: int = 0
    current: int = 0
    rotated: int = 0
    changed_meanwhile: int = 0
    undecryptable: int = 0
    undecryptable_ids: list = field(default_factory=list)


def holds_tokens(model: type[models.Model], model_field: models.Field) -> bool:
    return (
        isinstance(model_field, EncryptedTextField)
        or getattr(model_field, "stores_fernet_tokens", False)
        or (model._meta.label_lower, model_field.name) in TOKEN_COLUMNS
    )


def encrypted_columns() -> list[tuple[type[models.Model], models.Field]]:
    """(model, field) of every column holding Fernet tokens, in a stable order."""
    found = []
    for model in apps.get_models():
        meta = model._meta
        if meta.proxy or not meta.managed:
            continue
        for model_field in meta.local_concrete_fields:  # local: a parent's columns are its own model's
            if holds_tokens(model, model_field):
                found.append((model, model_field))
    return sorted(found, key=lambda pair: (pair[0]._meta.label_lower, pair[1].name))


class Command(BaseCommand):
    help = "Re-encrypt every encrypted PII column under the first (newest) key of PII_ENCRYPTION_KEYS."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Count what would be re-encrypted; write nothing.")
        parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="Rows per transaction.")

    def handle(self, *args, dry_run=False, batch_size=BATCH_SIZE, **options):
        keys = list(settings.PII_ENCRYPTION_KEYS)
        if not keys:
            raise CommandError("PII_ENCRYPTION_KEYS is empty.")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        newest = Fernet(keys[0])
        every = MultiFernet([Fernet(key) for key in keys])
        tables = set(connection.introspection.table_names())
        self.stdout.write(
            f"{len(keys)} key{'s' if len(keys) != 1 else ''} configured; re-encrypting under the first."
            + (" Dry run: nothing is written." if dry_run else "")
        )
        reports = []
        for model, model_field in encrypted_columns():
            label = f"{model._meta.label}.{model_field.name}"
            if model._meta.db_table not in tables:
                self.stdout.write(f"{label}: table {model._meta.db_table} not created yet, skipped")
                continue
            reports.append(self._rotate_column(model, model_field, label, newest, every, batch_size, dry_run))
        self._summary(reports, dry_run)
        broken = [report for report in reports if report.undecryptable]
        if broken:
            details = "; ".join(f"{r.label}: {r.undecryptable} (ids {r.undecryptable_ids})" for r in broken)
            raise CommandError(f"values no configured key decrypts: {details}")

    def _rotate_column(self, model, model_field, label, newest, every, batch_size, dry_run) -> ColumnReport:
        quote = connection.ops.quote_name
        table, column, pk = quote(model._meta.db_table), quote(model_field.column), quote(model._meta.pk.column)
        select = f"SELECT {pk}, {column} FROM {table} WHERE {column} IS NOT NULL AND {column} <> ''"  # noqa: S608
        # Compare-and-set: a value rewritten by the application meanwhile is left as it is now.
        update = f"UPDATE {table} SET {column} = %s WHERE {pk} = %s AND {column} = %s"  # noqa: S608
        report = ColumnReport(label)
        last_pk = None
        while True:
            with transaction.atomic(), connection.cursor() as cursor:
                if last_pk is None:
                    cursor.execute(f"{select} ORDER BY {pk} LIMIT %s", [batch_size])
                else:
                    cursor.execute(f"{select} AND {pk} > %s ORDER BY {pk} LIMIT %s", [last_pk, batch_size])
                rows = cursor.fetchall()
                if not rows:
                    break
                last_pk = rows[-1][0]
                changes = []
                for row_pk, token in rows:
                    report.scanned += 1
                    if self._is_current(newest, token):
                        report.current += 1
                        continue
                    try:
                        changes.append((every.rotate(token.encode()).decode(), row_pk, token))
                    except InvalidToken:
                        report.undecryptable += 1
                        if len(report.undecryptable_ids) < MAX_REPORTED_IDS:
                            report.undecryptable_ids.append(row_pk)
                if changes and not dry_run:
                    cursor.executemany(update, changes)
                    written = cursor.rowcount if cursor.rowcount is not None and cursor.rowcount >= 0 else len(changes)
                    report.rotated += written
                    report.changed_meanwhile += len(changes) - written
                elif changes:
                    report.rotated += len(changes)
            verb = "would re-encrypt" if dry_run else "re-encrypted"
            self.stdout.write(f"  {label}: {report.scanned} scanned, {report.rotated} {verb}")
            if len(rows) < batch_size:
                break
        return report

    @staticmethod
    def _is_current(newest: Fernet, token: str) -> bool:
        # MultiFernet.rotate re-encrypts every token, so a token's key is checked first. Checking
        # the signature (extract_timestamp) tells whether the newest key made it, without decrypting.
        try:
            newest.extract_timestamp(token.encode())
        except InvalidToken:
            return False
        return True

    def _summary(self, reports: list[ColumnReport], dry_run: bool) -> None:
        verb = "would re-encrypt" if dry_run else "re-encrypted"
        self.stdout.write("")
        self.stdout.write(f"{'column':60} {'values':>9} {'current':>9} {verb:>16} {'undecryptable':>14}")
        for report in reports:
            self.stdout.write(
                f"{report.label:60} {report.scanned:>9} {report.current:>9} {report.rotated:>16} "
                f"{report.undecryptable:>14}"
            )
            if report.changed_meanwhile:
                self.stdout.write(
                    f"  {report.changed_meanwhile} changed by the application meanwhile (left as written)"
                )
        total = sum(report.rotated for report in reports)
        self.stdout.write(f"Total {verb}: {total}.")

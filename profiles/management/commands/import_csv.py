import json
import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from profiles.csv_import import MappingInvalid, csv_import_create, csv_import_run
from profiles.models import CsvImport, Source


class Command(BaseCommand):
    help = "Import a CSV file (streamed) into a CSV source, mapping columns to identifiers, traits and events."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--source", required=True, help="Slug of a CSV source.")
        parser.add_argument(
            "--map",
            action="append",
            default=[],
            metavar="COLUMN=TARGET",
            help="e.g. 'Email=identifier:email', 'First name=trait:first_name', 'Amount=property:amount', "
            "'Date=occurred_at', 'Id=external_id', 'Newsletter=consent:email_marketing', 'Notes=ignore'",
        )
        parser.add_argument("--mapping", help='A JSON file: {"columns": {...}, "event_type": ..., "timezone": ...}')
        parser.add_argument("--event-type", help="Canonical event type of every row (default customer.imported).")
        parser.add_argument("--timezone", help="IANA zone for dates without one (default UTC).")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, file, source, map, mapping, event_type, timezone, no_progress, **options):
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"no such file: {file}")
        target = Source.objects.filter(slug=source).first()
        if target is None:
            raise CommandError(f"no source with slug {source!r}")
        spec = json.loads(Path(mapping).read_text()) if mapping else {"columns": {}}
        for item in map:
            column, separator, destination = item.partition("=")
            if not separator:
                raise CommandError(f"--map takes COLUMN=TARGET, got {item!r}")
            spec.setdefault("columns", {})[column.strip()] = destination.strip()
        if event_type:
            spec["event_type"] = event_type
        if timezone:
            spec["timezone"] = timezone
        try:
            csv_import = csv_import_create(source=target, path=path.resolve(), file_name=path.name, spec=spec)
        except MappingInvalid as error:
            raise CommandError("the mapping is not usable:\n  - " + "\n  - ".join(error.errors)) from error
        show = not no_progress and sys.stderr.isatty()
        result = csv_import_run(csv_import=csv_import, on_progress=self._bar if show else None)
        if show:
            sys.stderr.write("\n")
        if result.status == CsvImport.FAILED:
            raise CommandError(f"import {result.pk} failed: {result.error}")
        self.stdout.write(
            f"import {result.pk}: {result.rows_read} rows stored as raw events, {result.rows_rejected} rejected "
            f"(malformed); workers process them now"
        )

    @staticmethod
    def _bar(progress):
        done = progress.bytes_read / progress.bytes_total if progress.bytes_total else 1
        rate = progress.rows / max(time.monotonic() - progress.started, 1e-6)
        filled = int(done * 30)
        sys.stderr.write(
            f"\r[{'#' * filled}{' ' * (30 - filled)}] {done:6.1%}  {progress.rows:,} rows  {rate:,.0f} rows/s"
        )
        sys.stderr.flush()

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from profiles.models import RawEvent, Source
from profiles.processing import raw_events_replay


class Command(BaseCommand):
    help = "Re-run quarantined or failed raw events after a contract or mapper fix."

    def add_arguments(self, parser):
        parser.add_argument("ids", nargs="*", type=int, help="Raw event ids (default: every match of the filters).")
        parser.add_argument("--source", help="Source slug.")
        parser.add_argument(
            "--status", choices=[RawEvent.QUARANTINED, RawEvent.FAILED], action="append", help="Default: both."
        )
        parser.add_argument("--since", help="Only raw events received at or after this ISO 8601 time.")
        parser.add_argument("--dry-run", action="store_true", help="Count what would be replayed; change nothing.")

    def handle(self, *args, ids, source, status, since, dry_run, **options):
        rows = RawEvent.objects.filter(status__in=status or [RawEvent.QUARANTINED, RawEvent.FAILED])
        if ids:
            rows = rows.filter(id__in=ids)
        if source:
            if not Source.objects.filter(slug=source).exists():
                raise CommandError(f"no source with slug {source!r}")
            rows = rows.filter(source__slug=source)
        if since:
            moment = parse_datetime(since)
            if moment is None or moment.tzinfo is None:
                raise CommandError(f"--since needs a timezone-aware ISO 8601 time, got {since!r}")
            rows = rows.filter(received_at__gte=moment)
        selected = list(rows.order_by("id").values_list("id", flat=True))
        if dry_run:
            self.stdout.write(f"would replay {len(selected)} raw events")
            return
        replayed = 0
        for start in range(0, len(selected), 1000):
            replayed += raw_events_replay(raw_event_ids=selected[start : start + 1000])
        still_bad = RawEvent.objects.filter(id__in=selected).exclude(status=RawEvent.PROCESSED).count()
        self.stdout.write(
            f"replayed {replayed} raw events; {replayed - still_bad} processed, {still_bad} still not processed"
        )

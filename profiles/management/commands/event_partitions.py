from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError

from profiles.partitions import ensure_event_partitions, event_partitions, is_partitioned


class Command(BaseCommand):
    help = (
        "List the monthly partitions of the events table (PostgreSQL), or create the missing ones: "
        "--ensure keeps the coming months ready (the daily schedule does the same); --from YYYY-MM "
        "also creates every month since then, moving those months' rows out of the default partition "
        "(run it before or after a backfill of old events)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--ensure", action="store_true", help="Create the missing partitions.")
        parser.add_argument("--from", dest="since", metavar="YYYY-MM", help="With --ensure: the first month.")
        parser.add_argument("--months-ahead", type=int, default=None)
        parser.add_argument("--exact", action="store_true", help="Count rows instead of the planner's estimate.")

    def handle(self, *args, ensure, since, months_ahead, exact, **options):
        if not is_partitioned():
            self.stdout.write("The events table is not partitioned on this database (partitioning is PostgreSQL only).")
            return
        if since and not ensure:
            raise CommandError("--from goes with --ensure")
        if ensure:
            try:
                first = datetime.strptime(since, "%Y-%m").replace(tzinfo=UTC) if since else None
            except ValueError:
                raise CommandError(f"--from must look like 2025-01, not {since!r}") from None
            if months_ahead is not None and not 0 <= months_ahead <= 24:
                raise CommandError("--months-ahead must be between 0 and 24")
            result = ensure_event_partitions(since=first, months_ahead=months_ahead)
            self.stdout.write(
                f"created {len(result.created)} partition(s), moved {result.moved_rows:,} row(s) out of the default "
                f"partition" + (f": {', '.join(result.created)}" if result.created else "")
            )
        label = "rows" if exact else "rows (estimate)"
        self.stdout.write(f"{'partition':<26} {'from':<12} {'to':<12} {label:>16} {'size':>10}")
        for partition in event_partitions(exact=exact):
            start = f"{partition.start:%Y-%m-%d}" if partition.start else "(default)"
            end = f"{partition.end:%Y-%m-%d}" if partition.end else ""
            rows = f"{partition.rows:,}" if partition.rows >= 0 else "not analysed"
            size = f"{partition.bytes / 2**20:>8.1f} MiB"
            self.stdout.write(f"{partition.name:<26} {start:<12} {end:<12} {rows:>16} {size}")

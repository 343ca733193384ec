import json as json_module
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.utils import timezone

from profiles.event_query_plans import explain_all, table


class Command(BaseCommand):
    help = (
        "EXPLAIN ANALYZE the queries the pages, segments and tasks run on the events table, and check "
        "that each reads only the monthly partitions its time window needs and uses an index where it "
        "should (PostgreSQL). Exits non-zero when a check fails."
    )

    def add_arguments(self, parser):
        parser.add_argument("--now", help="ISO timestamp the time windows end at (default: now).")
        parser.add_argument("--no-analyze", action="store_true", help="Plan only; do not run the queries.")
        parser.add_argument(
            "--without-seqscan",
            action="store_true",
            help="Check that an index can serve each query (small data, where scanning is rightly cheaper).",
        )
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, now, no_analyze, **options):
        if connection.vendor != "postgresql":
            raise CommandError("EXPLAIN checks need PostgreSQL")
        try:
            moment = datetime.fromisoformat(now) if now else timezone.now()
        except ValueError:
            raise CommandError(f"--now must be an ISO timestamp, not {now!r}") from None
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment, timezone.get_fixed_timezone(0))
        try:
            results = explain_all(moment, analyze=not no_analyze, without_seqscan=options["without_seqscan"])
        except ValueError as error:
            raise CommandError(str(error)) from None
        if options["json"]:
            self.stdout.write(_dumps([result.as_dict() for result in results]))
        else:
            for line in table(results):
                self.stdout.write(line)
        failed = [result.check.name for result in results if not result.ok]
        if failed:
            raise CommandError(f"{len(failed)} check(s) failed: {', '.join(failed)}")


def _dumps(value) -> str:
    return json_module.dumps(value, indent=2)

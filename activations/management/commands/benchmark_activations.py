import json
import sys

from django.core.management.base import BaseCommand, CommandError

from activations.benchmark import ActivationBenchmark, table
from profiles.benchmark import configured_postgres_url


class Command(BaseCommand):
    help = (
        "Sync a 1,000,000-member segment where 1% changed to a local Braze stand-in that enforces a rate limit "
        "with 429s: diff beside a raw SQL EXCEPT, send rate beside the limit, peak memory; then event-to-trigger "
        "latency with a running worker. Uses a scratch PostgreSQL database it creates and drops."
    )

    def add_arguments(self, parser):
        parser.add_argument("--profiles", type=int, default=1_000_000, help="Segment members (default 1,000,000).")
        parser.add_argument("--repeats", type=int, default=5, help="Measured diff repeats after a warm-up.")
        parser.add_argument(
            "--rate-limit", type=int, default=20, help="Requests/s the local destination accepts (1 s windows)."
        )
        parser.add_argument(
            "--send-rate",
            type=float,
            default=None,
            help="The destination's rate_limit_per_second (default: 95%% of the local destination's limit, as the "
            "README advises: the destination counts arrivals, and jitter can land a request in the previous second).",
        )
        parser.add_argument("--events", type=int, default=200, help="Events for the trigger latency.")
        parser.add_argument("--event-rate", type=float, default=20.0, help="Events per second.")
        parser.add_argument("--explain", action="store_true", help="Also EXPLAIN ANALYZE the diff's statements.")
        parser.add_argument("--json", action="store_true", help="Print the figures as JSON (progress on stderr).")
        parser.add_argument("--keep-database", action="store_true")

    def handle(self, *args, **options):
        url = configured_postgres_url()
        if options["profiles"] < 100:
            raise CommandError("--profiles must be at least 100 (1% of them change)")
        as_json = options["json"]

        def progress(line: str) -> None:
            (sys.stderr if as_json else self.stdout).write(line + "\n")

        bench = ActivationBenchmark(database_url=url, out=progress)
        try:
            figures = bench.run(
                profiles=options["profiles"],
                repeats=options["repeats"],
                rate_limit=options["rate_limit"],
                send_rate=options["send_rate"] or 0.95 * options["rate_limit"],
                events=options["events"],
                event_rate=options["event_rate"],
                explain=options["explain"],
            )
        finally:
            if not options["keep_database"]:
                bench.drop_database()
        if as_json:
            figures["latency"].pop("event_received_at", None)
            self.stdout.write(json.dumps(figures, indent=2, default=str))
            return
        if options["explain"]:
            for plan in figures["diff"].get("plans", []):
                self.stdout.write("\n" + plan)
        if figures["latency"].get("cluster_log"):
            self.stdout.write("\nworker log (not every trigger send was sent):\n" + figures["latency"]["cluster_log"])
        self.stdout.write("")
        for line in table(figures):
            self.stdout.write(line)

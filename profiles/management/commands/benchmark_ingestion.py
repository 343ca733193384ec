from django.core.management.base import BaseCommand

from profiles.benchmark import Benchmark, configured_postgres_url, median


class Command(BaseCommand):
    help = (
        "Measure events/s accepted by /v1/batch (real HTTP server) and processed into profiles by one "
        "worker, beside a raw psycopg binary COPY of the same rows. PostgreSQL only; uses a scratch database."
    )

    def add_arguments(self, parser):
        parser.add_argument("--events", type=int, default=50_000, help="Events per acceptance run.")
        parser.add_argument("--repeats", type=int, default=3, help="Acceptance runs (the median is reported).")
        parser.add_argument("--volumes", default="20000,100000", help="Event counts for the processing runs.")
        parser.add_argument("--batch", type=int, default=100, help="Events per /v1/batch request.")
        parser.add_argument("--senders", type=int, default=4, help="Concurrent client processes.")
        parser.add_argument("--server-workers", type=int, default=3, help="gunicorn worker processes.")
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--keep-database", action="store_true", help="Keep the scratch database afterwards.")

    def handle(self, *args, **options):
        url = configured_postgres_url()
        volumes = [int(v) for v in options["volumes"].split(",") if v.strip()]
        bench = Benchmark(
            database_url=url,
            out=self.stdout.write,
            server_workers=options["server_workers"],
            senders=options["senders"],
            batch=options["batch"],
        )
        try:
            figures = bench.run(
                events=options["events"], volumes=volumes, repeats=options["repeats"], seed=options["seed"]
            )
        finally:
            if not options["keep_database"]:
                bench.drop_database()
        accepted, copy = median(figures.accepted_per_second), median(figures.copy_rows_per_second)
        self.stdout.write("")
        self.stdout.write(f"{'figure':<44}{'ours':>14}{'baseline':>16}{'ratio':>9}")
        self.stdout.write(
            f"{'accepted by /v1/batch (median, events/s)':<44}{accepted:>14,.0f}{copy:>16,.0f}{accepted / copy:>9.1%}"
        )
        for volume, rate, peak in figures.processed:
            self.stdout.write(
                f"{f'processed, {volume:,} events (events/s)':<44}{rate:>14,.0f}{copy:>16,.0f}{rate / copy:>9.1%}"
                f"   peak RSS {peak / 1024:,.0f} MiB"
            )
        self.stdout.write("baseline: psycopg 3 binary COPY of the same rows into a table shaped like raw events")

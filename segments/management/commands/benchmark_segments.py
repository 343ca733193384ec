from django.core.management.base import BaseCommand, CommandError

from profiles.benchmark import configured_postgres_url
from segments.benchmark import SegmentBenchmark, table


class Command(BaseCommand):
    help = (
        "Compute a five-condition segment over a scratch database (default 1,000,000 profiles and 10,000,000 "
        "events) with the compiled query, beside hand-written PostgreSQL SQL and DuckDB, and time one profile's "
        "re-evaluation. PostgreSQL only. Needs duckdb (requirements-dev.txt)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--profiles", type=int, default=1_000_000)
        parser.add_argument("--events", type=int, default=10_000_000)
        parser.add_argument("--repeats", type=int, default=3)
        parser.add_argument("--keep-database", action="store_true")
        parser.add_argument("--reuse-database", action="store_true", help="Measure a kept scratch database again.")

    def handle(self, *args, **options):
        url = configured_postgres_url()
        try:
            import duckdb  # noqa: F401
        except ImportError as error:
            raise CommandError("The DuckDB baseline needs duckdb: pip install -r requirements-dev.txt") from error
        bench = SegmentBenchmark(database_url=url, out=self.stdout.write)
        try:
            figures = bench.run(
                profiles=options["profiles"],
                events=options["events"],
                repeats=options["repeats"],
                reuse=options["reuse_database"],
            )
        finally:
            if not options["keep_database"]:
                bench.drop_database()
        self.stdout.write("")
        for line in table(figures):
            self.stdout.write(line)

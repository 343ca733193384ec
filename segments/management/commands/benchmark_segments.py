from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

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
        database = settings.DATABASES["default"]
        if database["ENGINE"] != "django.db.backends.postgresql":
            raise CommandError("The benchmark runs on PostgreSQL: set DATABASE_URL=postgres://...")
        try:
            import duckdb  # noqa: F401
        except ImportError as error:
            raise CommandError("The DuckDB baseline needs duckdb: pip install -r requirements-dev.txt") from error
        host, port = database["HOST"] or "127.0.0.1", database["PORT"] or 5432
        url = f"postgresql://{database['USER']}@{host}:{port}/{database['NAME']}"
        if database.get("PASSWORD"):
            url = url.replace("@", f":{database['PASSWORD']}@", 1)
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

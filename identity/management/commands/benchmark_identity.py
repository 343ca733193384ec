from django.core.management.base import BaseCommand, CommandError

from identity.benchmark import IdentityBenchmark, table
from profiles.benchmark import configured_postgres_url


class Command(BaseCommand):
    help = (
        "Measure a full identity graph rebuild and incremental resolution of a batch of new links, beside "
        "SciPy's connected_components on the same edge list and a raw binary COPY out and in of the same rows. "
        "PostgreSQL only; uses a scratch database. Needs numpy and scipy (requirements-dev.txt)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--identifiers", type=int, default=1_000_000)
        parser.add_argument("--links", type=int, default=1_500_000)
        parser.add_argument("--small", type=int, default=100_000, help="The smaller graph for the incremental run.")
        parser.add_argument("--incremental", type=int, default=10_000, help="New links resolved in one batch.")
        parser.add_argument("--repeats", type=int, default=3, help="Runs per figure (the median is reported).")
        parser.add_argument(
            "--fix", type=float, default=0.01, help="Fraction of components to corrupt for the repair run (0: skip)."
        )
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--keep-database", action="store_true", help="Keep the scratch database afterwards.")

    def handle(self, *args, **options):
        url = configured_postgres_url()
        try:
            import numpy  # noqa: F401
            import scipy  # noqa: F401
        except ImportError as error:
            raise CommandError("The baselines need numpy and scipy: pip install -r requirements-dev.txt") from error
        bench = IdentityBenchmark(database_url=url, out=self.stdout.write)
        try:
            figures = bench.run(
                identifiers=options["identifiers"],
                links=options["links"],
                small=min(options["small"], options["identifiers"]),
                incremental=options["incremental"],
                repeats=options["repeats"],
                fix=options["fix"],
                seed=options["seed"],
            )
        finally:
            if not options["keep_database"]:
                bench.drop_database()
        self.stdout.write("")
        for line in table(figures, incremental=options["incremental"]):
            self.stdout.write(line)

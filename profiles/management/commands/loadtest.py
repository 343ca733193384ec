from django.core.management.base import BaseCommand, CommandError

from profiles.benchmark import configured_postgres_url
from profiles.loadtest import LoadTest, Plan, claim_redis_database, release_redis_database


class Command(BaseCommand):
    help = (
        "Load test on loopback: concurrent senders on /v1/batch and a signed Standard Webhooks endpoint "
        "(gunicorn) for a fixed time while django-q2 workers process, then count raw events in and events "
        "out. Exits non-zero on any 5xx, lost, duplicated or unprocessed event. PostgreSQL; scratch database."
    )

    def add_arguments(self, parser):
        parser.add_argument("--senders", type=int, default=50, help="Concurrent senders (one connection each).")
        parser.add_argument("--duration", type=float, default=60, help="Seconds of load.")
        parser.add_argument("--workers", type=int, default=2, help="django-q2 worker processes.")
        parser.add_argument("--broker", choices=["orm", "redis"], default="orm")
        parser.add_argument(
            "--redis-url", default="", help="Redis for --broker redis (default: a free database on 127.0.0.1:6379)."
        )
        parser.add_argument("--batch", type=int, default=10, help="Messages per /v1/batch request.")
        parser.add_argument("--webhook-share", type=float, default=0.3, help="Share of requests sent as webhooks.")
        parser.add_argument("--resend-share", type=float, default=0.05, help="Share of requests that are redeliveries.")
        parser.add_argument("--pause", type=float, default=0.25, help="Seconds each sender waits between requests.")
        parser.add_argument("--server-workers", type=int, default=3, help="gunicorn worker processes.")
        parser.add_argument("--server-threads", type=int, default=4, help="Threads per gunicorn worker.")
        parser.add_argument("--drain-timeout", type=float, default=900, help="Seconds to wait for the workers.")
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--keep-database", action="store_true", help="Keep the scratch database afterwards.")

    def handle(self, *args, **options):
        url = configured_postgres_url()
        redis_url, claimed = options["redis_url"], False
        if options["broker"] == "redis" and not redis_url:
            redis_url, claimed = claim_redis_database(), True
        plan = Plan(
            senders=options["senders"],
            duration=options["duration"],
            batch=options["batch"],
            webhook_share=options["webhook_share"],
            resend_share=options["resend_share"],
            pause=options["pause"],
            seed=options["seed"],
        )
        load = LoadTest(
            database_url=url,
            plan=plan,
            workers=options["workers"],
            broker=options["broker"],
            redis_url=redis_url,
            server_workers=options["server_workers"],
            server_threads=options["server_threads"],
            create_database=True,
            keep_database=options["keep_database"],
            drain_timeout=options["drain_timeout"],
            out=self.stdout.write,
        )
        try:
            report = load.run()
        finally:
            if claimed:
                release_redis_database(redis_url)
        for line in report.lines():
            self.stdout.write(line)
        if not report.ok:
            raise CommandError("the load test found 5xx answers, lost, duplicated or unprocessed events")

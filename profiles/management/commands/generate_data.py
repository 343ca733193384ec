import sys

from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError

from profiles import demo
from profiles.datagen import demo_sources, raw_events_write
from profiles.processing import raw_events_process


class Command(BaseCommand):
    help = (
        "Generate what four sources (SDK, Mindbody, Stripe, Shopify) would send about N people, with real "
        "data's overlaps, typos, shared emails and devices, as pending raw events (COPY on PostgreSQL)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--profiles", type=int, default=1000, help="How many people (e.g. 1000000).")
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--chunk", type=int, default=5000, help="Rows per COPY.")
        parser.add_argument("--process", action="store_true", help="Then process them here (what workers do).")

    def handle(self, *args, profiles, seed, chunk, process, **options):
        if profiles < 1:
            raise CommandError("--profiles must be at least 1")
        sources = demo_sources()

        def report(written, elapsed):
            self.stderr.write(
                f"\r  {written:,} raw events written, {written / max(elapsed, 1e-6):,.0f} rows/s", ending=""
            )
            sys.stderr.flush()

        try:
            written = raw_events_write(
                demo.all_sources(profiles, seed=seed), sources=sources, chunk=chunk, on_chunk=report
            )
        except IntegrityError as error:
            raise CommandError(f"these events exist already (same --seed?): use another --seed. ({error})") from error
        self.stderr.write("\n")
        self.stdout.write(f"{written} raw events for {profiles} people written as pending")
        if process:
            result = raw_events_process()
            self.stdout.write(f"processed {result.processed}, quarantined {result.quarantined}, failed {result.failed}")

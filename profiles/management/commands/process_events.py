from django.core.management.base import BaseCommand

from profiles.processing import raw_events_process


class Command(BaseCommand):
    help = "Process pending raw events now, in this process (what the worker does)."

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=None, help="Stop after claiming this many raw events.")
        parser.add_argument("--batch-size", type=int, default=None)

    def handle(self, *args, limit, batch_size, **options):
        result = raw_events_process(limit=limit, batch_size=batch_size)
        self.stdout.write(
            f"claimed {result.claimed}, processed {result.processed}, quarantined {result.quarantined}, "
            f"failed {result.failed}, events written {result.events}"
        )

"""Apply the retention policies now, or show what they would purge.

    manage.py retention_apply [--dry-run] [--batch-size N] [--max-seconds S]

The daily schedule does the same (cdp_site.tasks_governance.retention_apply_task). Exits non-zero
when the run fails; a run stopped by --max-seconds is logged as partial and the next one carries on.
"""

from django.core.management.base import BaseCommand, CommandError

from cdp_site.governance_models import PurgeRun
from cdp_site.retention import BATCH_SIZE, retention_apply, retention_preview

NOUNS = {"raw_events": "raw event payloads", "quarantined": "quarantined/failed payloads", "events": "events"}


class Command(BaseCommand):
    help = "Purge what the retention policies say is too old (logged as a purge run), or --dry-run to count it."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Count what would be purged; change nothing.")
        parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="Rows per transaction.")
        parser.add_argument("--max-seconds", type=float, default=None, help="Stop starting batches after this long.")

    def handle(self, *args, dry_run=False, batch_size=BATCH_SIZE, max_seconds=None, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        if dry_run:
            rows = retention_preview()
            if not rows:
                self.stdout.write("No active retention policy: nothing would be purged.")
            for row in rows:
                self.stdout.write(
                    f"{row['data_class']}: keep {row['keep_days']} days, cutoff {row['cutoff']:%Y-%m-%d %H:%M} UTC: "
                    f"would purge {row['count']} {NOUNS[row['data_class']]}"
                )
            self.stdout.write("Dry run: nothing purged.")
            return

        def progress(data_class: str, purged: int) -> None:
            self.stdout.write(f"  {data_class}: {purged} {NOUNS[data_class]} purged so far")

        try:
            run = retention_apply(
                triggered_by="command", batch_size=batch_size, max_seconds=max_seconds, progress=progress
            )
        except Exception as error:
            raise CommandError(f"retention failed: {type(error).__name__}: {error}") from error
        for data_class, cutoff in run.cutoffs.items():
            self.stdout.write(
                f"{data_class}: keep {run.keep_days[data_class]} days, cutoff {cutoff}: "
                f"purged {run.counts.get(data_class, 0)} {NOUNS.get(data_class, data_class)}"
            )
        if not run.cutoffs:
            self.stdout.write("No active retention policy: nothing purged.")
        self.stdout.write(f"Purge run #{run.pk}: {run.status}, {run.batches} batches.")
        if run.status == PurgeRun.PARTIAL:
            self.stdout.write("Stopped by --max-seconds: run it again to carry on.")

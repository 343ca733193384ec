"""Run one sync now, in this process, and print what happened.

    manage.py sync_run newsletter-braze [--dry-run] [--ignore-guards]

Exits non-zero when the run fails or a guard pauses it.
"""

import time

from django.core.management.base import BaseCommand, CommandError

from activations.models import Sync, SyncRun
from activations.selectors import SKIP_LABELS, labelled_counts, percent
from activations.syncs import SyncBusy, SyncNotReady, sync_run_execute, sync_run_start

PAUSE_BETWEEN_SLICES = 0.5


class Command(BaseCommand):
    help = "Start a sync run (or a dry run) and execute it here, synchronously; print its summary."

    def add_arguments(self, parser):
        parser.add_argument("slug", help="The sync's slug.")
        parser.add_argument("--dry-run", action="store_true", help="Plan and build payloads; send nothing.")
        parser.add_argument("--ignore-guards", action="store_true", help="Run even if a guard would pause it.")

    def handle(self, *args, slug, dry_run=False, ignore_guards=False, **options):
        sync = Sync.objects.select_related("segment", "destination").filter(slug=slug).first()
        if sync is None:
            raise CommandError(f"no sync {slug!r} (known: {', '.join(Sync.objects.values_list('slug', flat=True))})")
        try:
            run = sync_run_start(
                sync=sync, triggered_by="command", dry_run=dry_run, ignore_guards=ignore_guards, enqueue=False
            )
        except SyncBusy as error:
            raise CommandError(f"{slug} is busy: run {error.run.pk} is still {error.run.status}") from error
        except SyncNotReady as error:
            raise CommandError(f"{slug} cannot run: {error}") from error
        kind = "dry run" if dry_run else "run"
        self.stdout.write(f"{sync.slug}: {kind} #{run.pk} started")
        started = time.monotonic()
        while True:
            sync_run_execute(run.pk)  # None: another worker holds it for now
            run.refresh_from_db()
            if run.status not in (SyncRun.PENDING, SyncRun.RUNNING):
                break
            time.sleep(PAUSE_BETWEEN_SLICES)  # records waiting for a retry, or another worker's slice
        self._summary(run, time.monotonic() - started)
        if run.status == SyncRun.PAUSED:
            raise CommandError(f"run #{run.pk} paused by a guard: {run.pause_reason}")
        if run.status == SyncRun.FAILED:
            raise CommandError(f"run #{run.pk} failed: {run.error}")

    def _summary(self, run: SyncRun, seconds: float) -> None:
        write = self.stdout.write
        write(f"status: {run.status}" + (" (dry run: nothing sent)" if run.is_dry_run else ""))
        if run.pause_reason and run.status != SyncRun.PAUSED:
            write(f"guards: {run.pause_reason}")
        write(f"members: {run.members}")
        operations = ", ".join(f"{op}: {count}" for op, count in sorted((run.operations or {}).items()))
        write(f"planned: {run.planned}" + (f" ({operations})" if operations else ""))
        write(f"applied: {run.applied}")
        write(f"failed: {run.failed}")
        write(f"skipped: {run.skipped}")
        for reason in labelled_counts(run.skipped_reasons, SKIP_LABELS):
            write(f"  {reason['code']}: {reason['count']} ({reason['label']})")
        write(f"unapplied: {run.unapplied} of {run.planned} (delta {percent(run.reconciliation_delta)}%)")
        timings = [
            f"{name} {value:.2f}"
            for name, value in (
                ("snapshot", run.snapshot_seconds),
                ("diff", run.diff_seconds),
                ("send", run.send_seconds),
            )
            if value is not None
        ]
        write(f"seconds: {seconds:.2f} in all" + (f" ({', '.join(timings)})" if timings else ""))
        write(f"requests: {run.requests}")

import sys
import time

from django.core.management.base import BaseCommand, CommandError

from identity.matching.services import identity_match_run
from identity.models import MatchRun

STAGES = {"keys": "blocking keys", "compare": "compare (fit)", "score": "score", "apply": "apply"}


class ProgressBar:
    """One line per stage on stderr, redrawn in place at most ten times a second."""

    def __init__(self, stream, width: int = 30):
        self.stream, self.width = stream, width
        self.stage, self.drawn_at = None, 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if stage == self.stage and done < total and now - self.drawn_at < 0.1:
            return
        if stage != self.stage and self.stage is not None:
            self.stream.write("\n")
        self.stage, self.drawn_at = stage, now
        filled = int(self.width * done / total) if total else self.width
        percent = 100 * done / total if total else 100
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r{STAGES.get(stage, stage):<14} [{bar}] {percent:5.1f}% {done:,}/{total:,}")
        self.stream.flush()

    def close(self) -> None:
        if self.stage is not None:
            self.stream.write("\n")
            self.stream.flush()


class Command(BaseCommand):
    help = (
        "Probabilistic identity matching (Fellegi-Sunter, m and u fitted by EM on the data). Incremental by "
        "default: profiles updated since the last applied run (the first run is full). Pairs above the auto "
        "threshold are linked and merged, pairs between the thresholds queued for review. --dry-run shows what "
        "it would link without linking."
    )

    def add_arguments(self, parser):
        parser.add_argument("--full", action="store_true", help="All active profiles, not only the new and changed.")
        parser.add_argument("--dry-run", action="store_true", help="Score and report; write no links or merges.")
        parser.add_argument("--auto-threshold", type=float, help="Default: settings.IDENTITY_MATCH_AUTO_THRESHOLD.")
        parser.add_argument("--review-threshold", type=float, help="Default: IDENTITY_MATCH_REVIEW_THRESHOLD.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar on stderr.")
        parser.add_argument("--show", type=int, default=50, help="Pairs listed in a dry run (all are counted).")

    def handle(self, *args, **options):
        bar = None if options["no_progress"] else ProgressBar(sys.stderr)
        started = time.monotonic()
        try:
            run = identity_match_run(
                mode=MatchRun.FULL if options["full"] else MatchRun.INCREMENTAL,
                dry_run=options["dry_run"],
                auto_threshold=options["auto_threshold"],
                review_threshold=options["review_threshold"],
                progress=bar,
            )
        except ValueError as error:
            raise CommandError(str(error)) from error
        finally:
            if bar:
                bar.close()
        seconds = time.monotonic() - started
        parameters = run.parameters or {}
        verb = "would link" if run.is_dry_run else "linked"
        self.stdout.write(
            f"match run {run.pk} ({run.mode}{', dry run' if run.is_dry_run else ''}) in {seconds:.1f} s: "
            f"{run.profiles_considered:,} profiles, {run.pairs_compared:,} pairs compared "
            f"({parameters.get('capped_keys', 0):,} blocking keys over the cap of "
            f"{parameters.get('block_cap')} skipped)"
        )
        self.stdout.write(
            f"thresholds auto {run.auto_threshold} / review {run.review_threshold}: {verb} {run.links_auto:,}, "
            f"{'would queue' if run.is_dry_run else 'queued'} {run.links_review:,} for review, "
            f"{run.skipped_rejected:,} skipped (rejected before)"
        )
        self.stdout.write(
            f"model: prior {parameters.get('prior', 0):.4f} among candidates, EM {parameters.get('iterations')} "
            f"iterations{' (converged)' if parameters.get('converged') else ''}"
        )
        if run.is_dry_run:
            decided = [entry for entry in run.sample if entry["decision"] != "none"]
            for entry in decided[: options["show"]]:
                fields = ", ".join(f"{name} {value['level']}" for name, value in entry["fields"].items())
                self.stdout.write(
                    f"  {entry['outcome']:<16} profiles {entry['profile_a']} + {entry['profile_b']}  "
                    f"p={entry['probability']:.4f}  {fields}"
                )
            total = run.links_auto + run.links_review + run.skipped_rejected
            if total > len(decided[: options["show"]]):
                self.stdout.write(f"  ... {total - len(decided[: options['show']]):,} more not listed")

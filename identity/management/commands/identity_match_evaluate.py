from django.conf import settings
from django.core.management.base import BaseCommand

from identity.matching.evaluation import evaluate
from identity.matching.synthetic import generate


class Command(BaseCommand):
    help = (
        "Measure probabilistic matching on generated, labelled person records (typos, nicknames, moves, "
        "missing and swapped fields, households): pairwise precision, recall and F1 of the resulting "
        "profiles at the auto threshold. Touches no database."
    )

    def add_arguments(self, parser):
        parser.add_argument("--people", type=int, default=5000)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--auto-threshold", type=float, default=None)
        parser.add_argument("--review-threshold", type=float, default=None)

    def handle(self, *args, **options):
        records = generate(people=options["people"], seed=options["seed"])
        result = evaluate(
            records,
            auto_threshold=options["auto_threshold"] or settings.IDENTITY_MATCH_AUTO_THRESHOLD,
            review_threshold=options["review_threshold"] or settings.IDENTITY_MATCH_REVIEW_THRESHOLD,
            block_cap=settings.IDENTITY_MATCH_BLOCK_CAP,
            em_iterations=settings.IDENTITY_MATCH_EM_ITERATIONS,
            random_pairs=settings.IDENTITY_MATCH_RANDOM_PAIRS,
            seed=options["seed"],
        )
        metrics = result.metrics
        lines = [
            f"people {result.people:,}, records {result.records:,} (seed {options['seed']})",
            f"pairs compared {result.pairs_compared:,} of {result.pairs_possible:,} possible "
            f"({100 * result.pairs_compared / max(result.pairs_possible, 1):.3f}%), "
            f"{result.capped_keys:,} blocking keys over the cap",
            f"blocking recall {result.blocking_recall:.4f} (true pairs that became candidates)",
            f"auto threshold {result.auto_threshold}: precision {metrics.precision:.4f}, recall {metrics.recall:.4f}, "
            f"F1 {metrics.f1:.4f} (true positive pairs {metrics.true_positives:,}, false positive "
            f"{metrics.false_positives:,}, false negative {metrics.false_negatives:,})",
            f"auto links {result.links_auto:,}; review queue {result.links_review:,} pairs at review threshold "
            f"{result.review_threshold}, of which {result.true_pairs_in_review:,} are true matches",
            f"EM {result.model.iterations} iterations{' (converged)' if result.model.converged else ''}, "
            f"prior among candidates {result.model.prior:.4f}; {result.seconds:.1f} s",
        ]
        for line in lines:
            self.stdout.write(line)

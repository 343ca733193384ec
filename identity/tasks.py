"""django-q2 tasks of the identity app."""

from identity.matching.services import identity_match_run


def identity_match_task(*, mode: str = "incremental") -> dict:
    """The probabilistic matching pass; scheduled incremental, full on demand."""
    run = identity_match_run(mode=mode)
    return {
        "match_run_id": run.pk,
        "mode": run.mode,
        "pairs_compared": run.pairs_compared,
        "links_auto": run.links_auto,
        "links_review": run.links_review,
        "skipped_rejected": run.skipped_rejected,
    }

"""The probabilistic matching pass over profiles that share no deterministic identifier.

1. Refresh the blocking keys (MatchKey) of the profiles in scope.
2. Find candidate pairs in SQL: profiles sharing a key, skipping keys held by more than a cap of
   profiles; pairs are read one chunk of profiles at a time, never all at once.
3. Fit m, u and the prior by EM on the candidates' comparison patterns (all of them, and those that
   share a home apart), and the population view (u of random pairs); a run with too few candidates
   reuses the last fitted model.
4. Score every candidate, an exact name or postcode weighed by how common the value is among all
   active profiles (a frequency table counted in one streaming read); above the auto threshold
   the pair is linked and merged, between the thresholds it is queued for review, through
   identity.services.profiles_link (which refuses pairs a reviewer rejected or an unmerge
   separated). A dry run applies nothing.
"""

from __future__ import annotations

import heapq
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from identity.matching import domain
from identity.matching.records import profile_id_chunks, records_for, term_frequencies
from identity.models import MatchKey, MatchRun
from identity.services import profiles_link, separations_between
from profiles.models import Profile

logger = logging.getLogger(__name__)

RULE = "probabilistic"
ACTOR = "rule:probabilistic"

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class ScoredPair:
    profile_a: int
    profile_b: int
    pattern: domain.Pattern
    frequencies: domain.Frequencies | None
    score: float
    probability: float
    decision: str

    def as_sample(self, model: domain.MatchModel, outcome: str | None = None) -> dict:
        entry = {
            "profile_a": self.profile_a,
            "profile_b": self.profile_b,
            "probability": round(self.probability, 6),
            "score": round(self.score, 3),
            "decision": self.decision,
            "fields": model.explain(self.pattern, self.frequencies),
        }
        if outcome:
            entry["outcome"] = outcome
        return entry


def _setting(name: str):
    return getattr(settings, name)


# -- scope and keys --------------------------------------------------------------------------


def _scope(since):
    profiles = Profile.objects.filter(status=Profile.ACTIVE)
    return profiles.filter(updated_at__gt=since) if since is not None else profiles


def match_keys_refresh(*, scope, progress: Progress | None = None, total: int = 0) -> int:
    """Recompute the blocking keys of the profiles in scope; drop those of profiles no longer active."""
    MatchKey.objects.exclude(profile__status=Profile.ACTIVE).delete()
    done = keys = 0
    for chunk in profile_id_chunks(scope):
        rows = [
            MatchKey(profile_id=profile_id, key=key)
            for profile_id, record in records_for(chunk).items()
            for key in sorted(domain.blocking_keys(record))
        ]
        with transaction.atomic():
            MatchKey.objects.filter(profile_id__in=chunk).delete()
            MatchKey.objects.bulk_create(rows, batch_size=1000)
        keys += len(rows)
        done += len(chunk)
        if progress:
            progress("keys", done, total)
    return keys


def capped_keys_count(*, cap: int) -> int:
    """Keys held by more than `cap` profiles: too common to block on (a shared postcode + Smith)."""
    table = connection.ops.quote_name(MatchKey._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*) FROM (SELECT k.key FROM {table} k GROUP BY k.key HAVING COUNT(*) > %s) common",  # noqa: S608
            [cap],
        )
        return cursor.fetchone()[0]


def candidate_pairs_for(chunk: list[int], *, cap: int, since=None) -> list[tuple[int, int]]:
    """Candidate pairs of one chunk of profiles in scope, found by the database.

    A pair (s, o) shares a key held by at most `cap` profiles. Each pair is read once: in a full
    run from its lower id; in an incremental run also when the other side is out of scope.
    """
    quote = connection.ops.quote_name
    keys = quote(MatchKey._meta.db_table)
    low, high = chunk[0], chunk[-1]
    # Keys counted only among those this chunk holds, so the cost follows the chunk, not the table.
    sql = f"""
        SELECT DISTINCT s.profile_id, o.profile_id
        FROM {keys} s
        JOIN {keys} o ON o.key = s.key AND o.profile_id <> s.profile_id
        WHERE s.profile_id BETWEEN %s AND %s
          AND s.key IN (
              SELECT c.key FROM {keys} c
              WHERE c.key IN (SELECT m.key FROM {keys} m WHERE m.profile_id BETWEEN %s AND %s)
              GROUP BY c.key HAVING COUNT(*) <= %s
          )
    """  # noqa: S608
    params: list = [low, high, low, high, cap]
    if since is None:
        sql += " AND o.profile_id > s.profile_id"
    else:
        scope_sql, scope_params = _scope(since).values("id").query.sql_with_params()
        chunk_scope_sql, chunk_scope_params = (
            _scope(since).filter(id__gte=low, id__lte=high).values("id").query.sql_with_params()
        )
        sql += f" AND s.profile_id IN ({chunk_scope_sql})"
        sql += f" AND (o.profile_id > s.profile_id OR o.profile_id NOT IN ({scope_sql}))"
        params += [*chunk_scope_params, *scope_params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [(min(a, b), max(a, b)) for a, b in cursor.fetchall()]


def _compared_chunks(
    scope,
    *,
    cap: int,
    since,
    stage: str,
    progress: Progress | None,
    total: int,
    frequencies: domain.TermFrequencies | None = None,
) -> Iterator[list[tuple[tuple[int, int], domain.Pattern, domain.Frequencies | None]]]:
    """Per chunk of profiles in scope: its candidate pairs with their comparison patterns and, given
    the term frequencies, the frequencies of the values they agree on."""
    done = 0
    for chunk in profile_id_chunks(scope):
        pairs = candidate_pairs_for(chunk, cap=cap, since=since)
        if pairs:
            records = records_for({profile_id for pair in pairs for profile_id in pair})
            compared = []
            for a, b in pairs:
                if a in records and b in records:
                    pattern = domain.compare_records(records[a], records[b])
                    compared.append(((a, b), pattern, domain.agreed_frequencies(records[a], pattern, frequencies)))
            yield compared
        done += len(chunk)
        if progress:
            progress(stage, done, total)


# -- the model -------------------------------------------------------------------------------


def _population_patterns(*, profiles: int, pairs: int, seed: int) -> Counter:
    """Comparison patterns of random profile pairs, from a random sample of profiles."""
    sample_ids = list(
        Profile.objects.filter(status=Profile.ACTIVE).order_by("?").values_list("id", flat=True)[:profiles]
    )
    records = records_for(sample_ids)
    ordered = [records[profile_id] for profile_id in sample_ids if profile_id in records]
    return Counter(
        domain.compare_records(ordered[i], ordered[j]) for i, j in domain.random_pairs(pairs, len(ordered), seed=seed)
    )


def _previous_parameters() -> dict | None:
    run = (
        MatchRun.objects.filter(status=MatchRun.COMPLETED)
        .exclude(parameters={})
        .only("parameters")
        .order_by("-started_at", "-id")
        .first()
    )
    return run.parameters if run else None


def _possible_pairs(*, active: int, in_scope: int, full: bool) -> int:
    if full:
        return active * (active - 1) // 2
    return in_scope * (active - in_scope) + in_scope * (in_scope - 1) // 2


# -- the pass --------------------------------------------------------------------------------


def identity_match_run(
    *,
    mode: str = MatchRun.INCREMENTAL,
    dry_run: bool = False,
    auto_threshold: float | None = None,
    review_threshold: float | None = None,
    progress: Progress | None = None,
) -> MatchRun:
    """Run the probabilistic pass and record it as a MatchRun (failed runs are recorded too).

    Incremental covers profiles updated since the last completed, applied run started; with no
    such run it runs in full.
    """
    if mode not in (MatchRun.FULL, MatchRun.INCREMENTAL):
        raise ValueError(f"unknown mode {mode!r}")
    auto_threshold = _setting("IDENTITY_MATCH_AUTO_THRESHOLD") if auto_threshold is None else auto_threshold
    review_threshold = _setting("IDENTITY_MATCH_REVIEW_THRESHOLD") if review_threshold is None else review_threshold
    if not 0 < review_threshold <= auto_threshold <= 1:
        raise ValueError("thresholds must satisfy 0 < review <= auto <= 1")
    since = None
    if mode == MatchRun.INCREMENTAL:
        last = (
            MatchRun.objects.filter(status=MatchRun.COMPLETED, is_dry_run=False).order_by("-started_at", "-id").first()
        )
        if last is None:
            mode = MatchRun.FULL
        else:
            since = last.started_at
    run = MatchRun.objects.create(
        mode=mode,
        is_dry_run=dry_run,
        status=MatchRun.RUNNING,
        started_at=timezone.now(),
        since=since,
        auto_threshold=auto_threshold,
        review_threshold=review_threshold,
    )
    try:
        _run(run, progress)
    except Exception as error:
        run.status, run.error, run.finished_at = MatchRun.FAILED, f"{type(error).__name__}: {error}", timezone.now()
        run.save(update_fields=["status", "error", "finished_at"])
        logger.exception("identity_match_failed run_id=%s", run.pk)
        raise
    return run


def _run(run: MatchRun, progress: Progress | None) -> None:
    cap = _setting("IDENTITY_MATCH_BLOCK_CAP")
    scope = _scope(run.since)
    in_scope = scope.count()
    active = Profile.objects.filter(status=Profile.ACTIVE).count()
    run.profiles_considered = in_scope
    match_keys_refresh(scope=scope, progress=progress, total=in_scope)

    # Pass 1: comparison patterns of every candidate pair; EM needs only their counts.
    pattern_counts: Counter = Counter()
    for compared in _compared_chunks(
        scope, cap=cap, since=run.since, stage="compare", progress=progress, total=in_scope
    ):
        pattern_counts.update(pattern for _, pattern, _ in compared)
    run.pairs_compared = sum(pattern_counts.values())

    model = _fit(run, pattern_counts, active=active, in_scope=in_scope)
    run.parameters = {**model.as_parameters(), "capped_keys": capped_keys_count(cap=cap), "block_cap": cap}

    # Pass 2: score, weighing exact agreement on a name or postcode by how common the value is
    # among all active profiles. Only pairs at or above the review threshold are kept (few: the
    # likely duplicates); the best few below it go to the sample for a person to check.
    frequencies = term_frequencies(Profile.objects.filter(status=Profile.ACTIVE))
    decided: list[ScoredPair] = []
    near_misses: list[tuple[float, int, int, domain.Pattern, domain.Frequencies | None]] = []
    probability: dict = {}
    for compared in _compared_chunks(
        scope, cap=cap, since=run.since, stage="score", progress=progress, total=in_scope, frequencies=frequencies
    ):
        for (a, b), pattern, agreed in compared:
            p = probability.get((pattern, agreed))
            if p is None:
                p = probability[pattern, agreed] = model.probability(pattern, agreed)
            decision = domain.decide(p, auto_threshold=run.auto_threshold, review_threshold=run.review_threshold)
            if decision != domain.NONE:
                decided.append(ScoredPair(a, b, pattern, agreed, model.score(pattern, agreed), p, decision))
            elif len(near_misses) < 10:
                heapq.heappush(near_misses, (p, a, b, pattern, agreed))
            else:
                heapq.heappushpop(near_misses, (p, a, b, pattern, agreed))

    # Strongest first, so a chain of merges grows from the surest pairs.
    decided.sort(key=lambda pair: (-pair.probability, pair.profile_a, pair.profile_b))
    outcomes = _predict(decided) if run.is_dry_run else _apply(run, model, decided, progress)
    sample_size = _setting("IDENTITY_MATCH_SAMPLE_SIZE")
    run.sample = [pair.as_sample(model, outcome) for pair, outcome in zip(decided, outcomes, strict=True)][
        :sample_size
    ] + [
        ScoredPair(a, b, pattern, agreed, model.score(pattern, agreed), p, domain.NONE).as_sample(model)
        for p, a, b, pattern, agreed in sorted(near_misses, key=lambda miss: miss[:3], reverse=True)
    ]
    counts = Counter(outcomes)
    run.links_auto = counts["merged"] + counts["would_merge"]
    run.links_review = counts["queued"] + counts["would_queue"]
    run.skipped_rejected = counts["skipped_rejected"]
    run.parameters["outcomes"] = dict(counts)
    run.status, run.finished_at = MatchRun.COMPLETED, timezone.now()
    run.save()
    logger.info(
        "identity_match_completed run_id=%s mode=%s dry_run=%s pairs=%s auto=%s review=%s",
        run.pk,
        run.mode,
        run.is_dry_run,
        run.pairs_compared,
        run.links_auto,
        run.links_review,
    )


def _fit(run: MatchRun, pattern_counts: Counter, *, active: int, in_scope: int) -> domain.MatchModel:
    previous = _previous_parameters()
    if previous and run.pairs_compared < _setting("IDENTITY_MATCH_MIN_FIT_PAIRS"):
        # Too few candidates to fit on: keep the model the last run fitted on more data. A full run
        # too: once the duplicates are merged, the few candidates left are nearly all non-matches,
        # and EM refitted on them finds no matches at all (prior at its floor), rejected pairs included.
        return domain.MatchModel.from_parameters(previous)
    fitted = domain.fit_em_by_home(pattern_counts, max_iterations=_setting("IDENTITY_MATCH_EM_ITERATIONS"))
    population = _population_patterns(
        profiles=_setting("IDENTITY_MATCH_RANDOM_PROFILES"), pairs=_setting("IDENTITY_MATCH_RANDOM_PAIRS"), seed=run.pk
    )
    return domain.with_population(
        fitted,
        population,
        candidate_pairs=run.pairs_compared,
        possible_pairs=_possible_pairs(active=active, in_scope=in_scope, full=run.mode == MatchRun.FULL),
    )


def _evidence(run: MatchRun, model: domain.MatchModel, pair: ScoredPair) -> dict:
    return {
        "match_run_id": run.pk,
        "score": round(pair.score, 3),
        "probability": round(pair.probability, 6),
        "fields": model.explain(pair.pattern, pair.frequencies),
    }


def _apply(run: MatchRun, model: domain.MatchModel, decided: list[ScoredPair], progress: Progress | None) -> list[str]:
    outcomes = []
    for done, pair in enumerate(decided, start=1):
        outcome = profiles_link(
            profile_a_id=pair.profile_a,
            profile_b_id=pair.profile_b,
            kind="probabilistic",
            rule=RULE,
            confidence=pair.probability,
            evidence=_evidence(run, model, pair),
            activate=pair.decision == domain.AUTO,
            actor=ACTOR,
        )
        outcomes.append(outcome.status)
        if progress:
            progress("apply", done, len(decided))
    return outcomes


def _predict(decided: list[ScoredPair]) -> list[str]:
    """What applying would do, without writing: rejected pairs are still refused."""
    separated = separations_between({profile_id for pair in decided for profile_id in (pair.profile_a, pair.profile_b)})
    return [
        "skipped_rejected"
        if frozenset((pair.profile_a, pair.profile_b)) in separated
        else "would_merge"
        if pair.decision == domain.AUTO
        else "would_queue"
        for pair in decided
    ]

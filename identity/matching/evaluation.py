"""Measure the matching pass on labelled records: pairwise precision, recall and F1 of the profiles it
would produce at the auto threshold.

The same functions as the live pass, end to end: normalise_record, blocking_keys with the same
cap, compare_records, fit_em_by_home, with_population, term_frequencies and agreed_frequencies over
all records, decide. Only the pair finding runs in memory (domain.candidate_pairs)
instead of as the SQL self-join on MatchKey, with the same rule.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from identity.matching import domain
from identity.matching.synthetic import SyntheticRecord


@dataclass(frozen=True)
class Evaluation:
    records: int
    people: int
    pairs_compared: int
    pairs_possible: int
    capped_keys: int
    auto_threshold: float
    review_threshold: float
    metrics: domain.PairwiseMetrics
    links_auto: int
    links_review: int
    true_pairs_in_review: int
    blocking_recall: float  # share of true pairs that blocking made candidates
    model: domain.MatchModel
    seconds: float


def evaluate(
    records: Sequence[SyntheticRecord],
    *,
    auto_threshold: float,
    review_threshold: float,
    block_cap: int,
    em_iterations: int,
    random_pairs: int = 50_000,
    seed: int = 0,
) -> Evaluation:
    started = time.perf_counter()
    match_records = {
        record.record_id: domain.normalise_record(
            record.record_id, record.traits, emails=record.emails, phones=record.phones
        )
        for record in records
    }
    truth = {record.record_id: record.person_id for record in records}
    pairs, capped = domain.candidate_pairs(
        {record_id: domain.blocking_keys(record) for record_id, record in match_records.items()}, cap=block_cap
    )
    patterns = {pair: domain.compare_records(match_records[pair[0]], match_records[pair[1]]) for pair in pairs}
    ordered = list(match_records.values())
    random_patterns = Counter(
        domain.compare_records(ordered[i], ordered[j])
        for i, j in domain.random_pairs(random_pairs, len(ordered), seed=seed)
    )
    model = domain.with_population(
        domain.fit_em_by_home(Counter(patterns.values()), max_iterations=em_iterations),
        random_patterns,
        candidate_pairs=len(pairs),
        possible_pairs=len(ordered) * (len(ordered) - 1) // 2,
    )
    frequencies = domain.term_frequencies(match_records.values())
    probability: dict = {}
    auto, review = [], []
    for pair, pattern in patterns.items():
        key = (pattern, domain.agreed_frequencies(match_records[pair[0]], pattern, frequencies))
        if key not in probability:
            probability[key] = model.probability(*key)
        decision = domain.decide(probability[key], auto_threshold=auto_threshold, review_threshold=review_threshold)
        if decision == domain.AUTO:
            auto.append(pair)
        elif decision == domain.REVIEW:
            review.append(pair)
    predicted = domain.clusters(match_records, auto)
    true_pairs = sum(1 for a, b in pairs if truth[a] == truth[b])
    metrics = domain.pairwise_metrics(predicted, truth)
    all_true = metrics.true_positives + metrics.false_negatives
    return Evaluation(
        records=len(records),
        people=len(set(truth.values())),
        pairs_compared=len(pairs),
        pairs_possible=len(records) * (len(records) - 1) // 2,
        capped_keys=capped,
        auto_threshold=auto_threshold,
        review_threshold=review_threshold,
        metrics=metrics,
        links_auto=len(auto),
        links_review=len(review),
        true_pairs_in_review=sum(1 for a, b in review if truth[a] == truth[b]),
        blocking_recall=true_pairs / all_true if all_true else 1.0,
        model=model,
        seconds=time.perf_counter() - started,
    )

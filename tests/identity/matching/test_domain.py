import math
import random
from collections import Counter

import pytest

from identity.matching import domain
from identity.matching.evaluation import evaluate
from identity.matching.synthetic import FIRST_NAMES, LAST_NAMES, SURNAMES, generate


@pytest.mark.parametrize(
    ("name", "code"),
    [("Robert", "R163"), ("Rupert", "R163"), ("Ashcraft", "A261"), ("Tymczak", "T522"), ("Pfister", "P236"),
     ("Smith", "S530"), ("Smyth", "S530"), ("O'Brien", "O165"), ("", "")],
)  # fmt: skip
def test_soundex(name, code):
    assert domain.soundex(name) == code


@pytest.mark.parametrize(
    ("full", "expected"),
    [("Ada Lovelace", ("ada", "lovelace")), ("Lovelace, Ada", ("ada", "lovelace")),
     ("Dr. Ada K. Lovelace", ("ada", "lovelace")), ("José Núñez", ("jose", "nunez")), ("Cher", ("cher", "")),
     (None, ("", ""))],
)  # fmt: skip
def test_split_full_name(full, expected):
    assert domain.split_full_name(full) == expected


@pytest.mark.parametrize(
    ("a", "b", "level"),
    [("william", "william", 0), ("bill", "william", 1), ("peggy", "margaret", 1), ("jonathan", "jonahtan", 1),
     ("alan", "allen", 2), ("mary", "robert", 3), ("", "mary", None)],
)  # fmt: skip
def test_first_name_levels_know_nicknames_and_typos(a, b, level):
    assert domain.compare_first_names(a, b) == level


@pytest.mark.parametrize(
    ("a", "b", "level"),
    [("johnson", "johnson", 0), ("johnson", "jonhson", 1), ("smith", "smyth", 2), ("smith", "garcia", 3)],
)
def test_last_name_levels_follow_jaro_winkler(a, b, level):
    assert domain.compare_last_names(a, b) == level


@pytest.mark.parametrize(
    ("a", "b", "level"),
    [("19870312", "19870312", 0), ("19870312", "19871203", 1), ("19870312", "19870321", 1),
     ("19870312", "19870313", 1), ("19870312", "19650101", 2), ("", "19870312", None)],
)  # fmt: skip
def test_date_levels(a, b, level):
    assert domain.compare_dates(a, b) == level


def test_normalise_record_reads_traits_and_identifiers():
    record = domain.normalise_record(
        7,
        {"name": "Smith, Bob", "birthday": "1980-02-29", "postal_code": "sw1a 1aa", "address": "12 Main Street",
         "gender": "Male"},
        emails=["Bob.Smith+shop@Example.com"],
        phones=["+447911123456"],
    )  # fmt: skip
    assert record == domain.MatchRecord(
        profile_id=7,
        first_name="bob",
        last_name="smith",
        birth_date="19800229",
        postal_code="SW1A1AA",
        address="12 main st",
        gender="m",
        email_locals=("bob.smith",),
        phone_suffixes=("1123456",),
    )


def test_compare_records_sees_swapped_names():
    a = domain.MatchRecord(1, first_name="cheryl", last_name="scott", birth_date="19700101")
    b = domain.MatchRecord(2, first_name="scott", last_name="cheryl", birth_date="19700101")
    assert domain.compare_records(a, b)[:3] == (0, 0, 0)


def test_a_moved_duplicate_with_a_nickname_still_shares_a_blocking_key():
    a = domain.MatchRecord(1, first_name="william", last_name="jones", birth_date="19700101", postal_code="10001")
    b = domain.MatchRecord(2, first_name="bill", last_name="jones", birth_date="19700101", postal_code="94110")
    assert domain.blocking_keys(a) & domain.blocking_keys(b)


def test_unrelated_people_share_no_blocking_key():
    a = domain.MatchRecord(1, first_name="william", last_name="jones", birth_date="19700101", postal_code="10001")
    b = domain.MatchRecord(2, first_name="maria", last_name="garcia", birth_date="19850606", postal_code="94110")
    assert not domain.blocking_keys(a) & domain.blocking_keys(b)


def test_candidate_pairs_skip_keys_over_the_cap():
    keys = {1: {"common", "x"}, 2: {"common", "x"}, 3: {"common"}, 4: {"common"}}
    assert domain.candidate_pairs(keys, cap=3) == ({(1, 2)}, 1)


def _sample_patterns(rng, *, m, u, prior, count):
    patterns = Counter()
    for _ in range(count):
        table = m if rng.random() < prior else u
        pattern = []
        for i, (_, levels) in enumerate(domain.FIELDS):
            if rng.random() < 0.1:
                pattern.append(None)  # missing values carry no evidence
            else:
                pattern.append(rng.choices(range(len(levels)), weights=table[i])[0])
        patterns[tuple(pattern)] += 1
    return patterns


def test_em_recovers_m_u_and_prior_from_unlabelled_vectors():
    m = tuple((0.85, *[0.15 / (len(levels) - 1)] * (len(levels) - 1)) for _, levels in domain.FIELDS)
    u = tuple((*[0.2 / (len(levels) - 1)] * (len(levels) - 1), 0.8) for _, levels in domain.FIELDS)
    patterns = _sample_patterns(random.Random(3), m=m, u=u, prior=0.3, count=40_000)

    model = domain.fit_em(patterns, max_iterations=500, held_out=frozenset())

    assert model.converged
    assert model.prior == pytest.approx(0.3, abs=0.01)
    for fitted, true in ((model.m, m), (model.u, u)):
        for fitted_levels, true_levels in zip(fitted, true, strict=True):
            assert fitted_levels == pytest.approx(true_levels, abs=0.02)


def test_weights_add_up_to_the_score_and_round_trip_through_parameters():
    patterns = _sample_patterns(
        random.Random(5),
        m=tuple((0.9, *[0.1 / (len(levels) - 1)] * (len(levels) - 1)) for _, levels in domain.FIELDS),
        u=tuple((*[0.1 / (len(levels) - 1)] * (len(levels) - 1), 0.9) for _, levels in domain.FIELDS),
        prior=0.4,
        count=5_000,
    )
    model = domain.with_population(domain.fit_em(patterns), patterns, candidate_pairs=5_000, possible_pairs=10_000_000)
    pattern = (0, 0, None, 2, 2, 0, None, None)
    explained = model.explain(pattern)
    assert set(explained) == {"first_name", "last_name", "postal_code", "address", "gender"}
    assert explained["first_name"]["level"] == "exact"
    restored = domain.MatchModel.from_parameters(model.as_parameters())
    assert restored.score(pattern) == pytest.approx(model.score(pattern), abs=1e-3)
    # The lower of the two populations' scores decides.
    assert model.score(pattern) == min(model.candidate_score(pattern), model.population_score(pattern))


def test_decide_uses_both_thresholds():
    assert domain.decide(0.999, auto_threshold=0.995, review_threshold=0.8) == domain.AUTO
    assert domain.decide(0.9, auto_threshold=0.995, review_threshold=0.8) == domain.REVIEW
    assert domain.decide(0.5, auto_threshold=0.995, review_threshold=0.8) == domain.NONE


def test_pairwise_metrics_count_pairs_within_clusters():
    truth = {1: "a", 2: "a", 3: "a", 4: "b", 5: "b"}
    predicted = domain.clusters(truth, [(1, 2), (3, 4)])
    metrics = domain.pairwise_metrics(predicted, truth)
    assert (metrics.true_positives, metrics.false_positives, metrics.false_negatives) == (1, 1, 3)
    assert metrics.precision == 0.5
    assert metrics.recall == 0.25


def test_synthetic_records_are_seeded_and_have_duplicates_across_sources():
    first, again = generate(people=50, seed=9), generate(people=50, seed=9)
    assert first == again
    per_person = Counter(record.person_id for record in first)
    assert len(per_person) == 50
    assert max(per_person.values()) >= 3
    assert len({record.source for record in first}) >= 3


def test_evaluation_on_a_seeded_set_keeps_precision_and_compares_far_fewer_than_all_pairs():
    result = evaluate(
        generate(people=400, seed=3), auto_threshold=0.995, review_threshold=0.8, block_cap=50, em_iterations=200
    )
    assert result.metrics.precision >= 0.995
    assert result.metrics.f1 >= 0.85
    assert result.blocking_recall >= 0.97
    assert result.pairs_compared < result.pairs_possible / 100


def _record(profile_id, first, last, postal_code=""):
    return domain.MatchRecord(profile_id, first_name=first, last_name=last, postal_code=postal_code)


def test_term_frequencies_are_shares_of_records_with_a_floor():
    records = [_record(1, "mary", "smith", "10115"), _record(2, "mary", "smith"), _record(3, "anna", "zyglowski")]

    frequencies = domain.term_frequencies(iter(records))  # a stream: read once

    assert frequencies.records == 3
    assert frequencies.frequency("first_name", "mary") == pytest.approx(2 / 3)
    assert frequencies.frequency("last_name", "zyglowski") == pytest.approx(1 / 3)
    assert frequencies.frequency("last_name", "unseen") == domain.TERM_FREQUENCY_FLOOR
    pattern = domain.compare_records(records[0], records[1])
    agreed = domain.agreed_frequencies(records[0], pattern, frequencies)
    assert agreed[0] == pytest.approx(2 / 3)  # first name exact
    assert agreed[1] == pytest.approx(2 / 3)  # last name exact
    assert agreed[2:] == (None,) * (len(domain.FIELDS) - 2)  # postcode missing on one side, others not adjusted
    assert domain.agreed_frequencies(records[0], pattern, None) is None


def _fitted_model():
    patterns = _sample_patterns(
        random.Random(5),
        m=tuple((0.9, *[0.1 / (len(levels) - 1)] * (len(levels) - 1)) for _, levels in domain.FIELDS),
        u=tuple((*[0.1 / (len(levels) - 1)] * (len(levels) - 1), 0.9) for _, levels in domain.FIELDS),
        prior=0.4,
        count=5_000,
    )
    return domain.with_population(
        domain.fit_em_by_home(patterns), patterns, candidate_pairs=5_000, possible_pairs=10_000_000
    )


def test_agreement_on_a_rare_value_weighs_more_than_on_a_common_one_in_both_views():
    model = _fitted_model()
    last = domain.FIELD_NAMES.index("last_name")
    for population in (False, True):
        rare = model.weight(last, 0, population=population, frequency=0.0001)
        common = model.weight(last, 0, population=population, frequency=0.01)
        assert rare - common == pytest.approx(math.log2(100))
    # For two random people, u is the value's frequency (Splink's term-frequency adjustment).
    assert model.weight(last, 0, population=True, frequency=0.001) == pytest.approx(math.log2(model.m[last][0] / 0.001))
    # Other levels and missing values are not adjusted.
    assert model.weight(last, 3, population=True, frequency=0.001) == model.weight(last, 3, population=True)
    assert model.weight(last, None, frequency=0.001) == 0.0


def test_pairs_that_share_a_home_are_weighed_by_the_model_fitted_on_them():
    model = _fitted_model()
    home_pattern = (0, 0, None, 0, None, None, None, None)
    elsewhere = (0, 0, None, 2, 2, None, None, None)
    assert domain.shares_home(home_pattern)
    assert domain.shares_home((0, 0, None, None, 1, None, None, None))  # a similar address
    assert not domain.shares_home(elsewhere)
    assert model.home is not None
    first = domain.FIELD_NAMES.index("first_name")
    home_weight = math.log2(model.home.m[first][0] / model.home.u[first][0])
    assert model.explain(home_pattern)["first_name"]["weight"] == pytest.approx(home_weight, abs=1e-3) or (
        model.population_score(home_pattern) < model.candidate_score(home_pattern)
    )
    restored = domain.MatchModel.from_parameters(model.as_parameters())
    assert restored.home is not None
    for pattern in (home_pattern, elsewhere):
        assert restored.score(pattern) == pytest.approx(model.score(pattern), abs=1e-3)


def test_synthetic_names_are_heavy_tailed():
    rng = random.Random(4)
    surnames = [SURNAMES.draw(rng) for _ in range(20_000)]
    head = set(LAST_NAMES)
    assert 0.22 < sum(name in head for name in surnames) / len(surnames) < 0.28  # the head: about a quarter
    assert len(set(surnames)) > 7_000  # and a long tail
    assert SURNAMES.share("smith") == pytest.approx(0.0083, abs=0.001)
    assert SURNAMES.share(LAST_NAMES[0]) > SURNAMES.share(LAST_NAMES[-1]) > 0
    assert len(SURNAMES.tail) == len(set(SURNAMES.tail)) == 40_000 and not head & set(SURNAMES.tail)
    first_names = [FIRST_NAMES["f"].draw(rng) for _ in range(10_000)]
    assert 0.55 < sum(name in FIRST_NAMES["f"].head for name in first_names) / len(first_names) < 0.65

"""The scorecard formulas, as pure functions."""

from profiles.source_audit import scorecard


def test_activation_impact_weighs_activated_people_revenue_and_used_event_types():
    assert scorecard.activation_impact(activated_share=0, revenue_share=0, used_event_type_share=0) == 1
    # 4 × (0.5 × 1 + 0.25 × 0 + 0.25 × 0.5) = 2.5, rounded half up to 3
    assert scorecard.activation_impact(activated_share=1, revenue_share=0, used_event_type_share=0.5) == 4
    assert scorecard.activation_impact(activated_share=1, revenue_share=1, used_event_type_share=1) == 5


def test_matchability_is_the_share_of_people_other_sources_also_reach():
    assert [scorecard.matchability(shared_profile_share=s) for s in (0, 0.1249, 0.125, 0.75, 1)] == [1, 1, 2, 4, 5]


def test_ingestion_complexity_adds_measured_problems_to_the_kind_and_stops_at_five():
    clean = {"event_types": 2, "error_rate": 0.0, "unknown_properties": 0, "poor_timestamp_share": 0.0}
    assert scorecard.ingestion_complexity(kind="tracking", **clean) == 1
    assert scorecard.ingestion_complexity(kind="mindbody", **clean) == 3
    messy = {"event_types": 5, "error_rate": 0.02, "unknown_properties": 1, "poor_timestamp_share": 0.05}
    assert scorecard.ingestion_complexity(kind="tracking", **messy) == 5
    assert scorecard.ingestion_complexity(kind="mindbody", **messy) == 5


def test_pii_exposure_counts_personal_identifier_types_traits_and_consent():
    assert scorecard.pii_exposure(pii_identifier_types=0, pii_traits=0, consent_records=0) == 1
    assert scorecard.pii_exposure(pii_identifier_types=3, pii_traits=0, consent_records=0) == 3
    assert scorecard.pii_exposure(pii_identifier_types=2, pii_traits=4, consent_records=9) == 5


def test_priority_rewards_impact_and_matchability_and_penalises_complexity_and_exposure():
    best = {"activation_impact": 5, "matchability": 5, "ingestion_complexity": 1, "pii_exposure": 1}
    worst = {"activation_impact": 1, "matchability": 1, "ingestion_complexity": 5, "pii_exposure": 5}
    assert scorecard.priority(best) == 5.0
    assert scorecard.priority(worst) == 1.0
    names = {"a": "Alpha", "b": "Beta", "c": "Gamma"}
    cards = {"a": {"priority": 2.0}, "b": {"priority": 3.5}, "c": {"priority": 2.0}}
    assert scorecard.ranking(cards, names) == ["b", "a", "c"]

"""Predictive traits: RFM models fitted on the tenant's own history, scores usable in segments."""

import random
from datetime import UTC, datetime, timedelta

import pytest

from profiles.models import Event, Profile, RawEvent
from segments.computed import computed_trait_create
from segments.models import ComputedTraitValue, PredictiveFit
from segments.predictive import predictive_trait_refresh
from segments.predictive_model import Row, auc, fit_churn, fit_value
from segments.selectors import segment_audience

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def synthetic_rows(count: int, seed: int = 1) -> list[Row]:
    """Recent, frequent buyers come back and spend; lapsed ones churn."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        recency = rng.expovariate(1 / 60)
        frequency = rng.randint(0, 30)
        monetary = frequency * rng.uniform(5, 40)
        engaged = 1.5 - recency / 60 + frequency / 15 + rng.gauss(0, 0.5)
        rows.append(
            Row(
                recency_days=recency,
                frequency=frequency,
                monetary=monetary,
                churned=engaged < 0.5,
                future_value=max(0.0, monetary * 0.3 - recency * 0.5 + rng.gauss(0, 10)),
            )
        )
    return rows


def test_auc_by_ranks():
    assert auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == 0.75
    assert auc([0.5, 0.5], [True, False]) == 0.5
    assert auc([0.2, 0.3], [True, True]) is None


def test_models_learn_the_signal_and_beat_their_baselines():
    rows = synthetic_rows(3000)
    churn = fit_churn(rows)
    assert churn.metrics["auc"] > 0.85
    assert churn.metrics["brier"] < churn.metrics["brier_base_rate"]
    lapsed, loyal = Row(recency_days=300, frequency=0, monetary=0), Row(recency_days=2, frequency=25, monetary=600)
    assert churn.predict(lapsed) > 0.8 > 0.2 > churn.predict(loyal)
    value = fit_value(rows)
    assert value.metrics["r2"] > 0.5 and value.metrics["mae"] < value.metrics["mae_mean"]
    assert value.predict(loyal) > value.predict(lapsed)


@pytest.fixture
def history(canonical_source):
    """40 profiles: half kept visiting (and paying) after the cut-off, half went quiet."""
    rng, now = random.Random(3), timezone_now()
    events, raws = [], []
    for n in range(40):
        profile = Profile.objects.create(created_at=now, updated_at=now)
        loyal = n % 2 == 0
        days_ago = [rng.randint(100, 400) for _ in range(rng.randint(1, 4))]
        if loyal:
            days_ago += [rng.randint(1, 80) for _ in range(rng.randint(4, 8))] + [
                rng.randint(91, 120) for _ in range(3)
            ]
        for index, days in enumerate(days_ago):
            raw = RawEvent(source=canonical_source, external_id=f"h{n}-{index}", received_at=now, payload={})
            raws.append(raw)
            events.append((profile, raw, NOW - timedelta(days=days, hours=n), 20 if loyal else 5))
    RawEvent.objects.bulk_create(raws)
    Event.objects.bulk_create(
        Event(
            profile=profile,
            source=canonical_source,
            raw_event=raw,
            type="payment.succeeded",
            occurred_at=at,
            received_at=at,
            revenue=revenue,
        )
        for profile, raw, at, revenue in events
    )


def timezone_now():
    from django.utils import timezone

    return timezone.now()


@pytest.mark.django_db
def test_churn_risk_is_fitted_stored_with_its_quality_and_usable_in_segments(history):
    trait = computed_trait_create(key="churn_risk", name="Churn risk", kind="churn_risk", event_type="")
    fit = predictive_trait_refresh(trait=trait, now=NOW)
    assert isinstance(fit, PredictiveFit) and fit.horizon_days == 90 and fit.sample_size == 40
    assert fit.model["metrics"]["auc"] is not None and fit.model["metrics"]["held_out"] == 12
    scores = dict(ComputedTraitValue.objects.filter(trait=trait).values_list("profile_id", "value"))
    assert len(scores) == 40 and all(0 <= score <= 1 for score in scores.values())
    risky = set(
        segment_audience(definition={"computed": "churn_risk", "op": "gte", "value": 0.5}, now=NOW).values_list(
            "id", flat=True
        )
    )
    quiet = set(Profile.objects.order_by("id").values_list("id", flat=True)[1::2])
    assert len(risky & quiet) >= 0.8 * len(quiet)  # the quiet half is mostly flagged


@pytest.mark.django_db
def test_predicted_value_and_too_little_history(history, api):
    trait = computed_trait_create(
        key="value_90d", name="Value", kind="predicted_value", event_type="", within_last_days=90
    )
    fit = predictive_trait_refresh(trait=trait, now=NOW)
    assert fit.model["kind"] == "value" and fit.model["metrics"]["sample"] == 40
    response = api("marketer").get("/api/v1/computed-traits/value_90d/").json()
    assert response["fit"]["metrics"]["sample"] == 40 and response["fit"]["features"][0] == "intercept"
    with pytest.raises(ValueError, match="too few to fit"):
        predictive_trait_refresh(trait=trait, now=NOW - timedelta(days=500))

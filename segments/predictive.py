"""Predictive traits: churn risk and predicted value, fitted on the tenant's own history.

The database computes recency, frequency and monetary value per profile as of a cut-off (one
aggregate query over profiles and events); rows stream back. The fit uses a bounded random sample
(reservoir) of the profiles active before the cut-off, with what happened in the horizon after it
as the outcome; every active profile is then scored on its features as of now and the scores are
materialised like any computed trait.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, Max, Q, Sum
from django.utils import timezone

from cdp_site.db import insert_rows
from profiles.models import Profile
from segments.models import ComputedTrait, ComputedTraitValue, PredictiveFit
from segments.predictive_model import Fit, Row, fit_churn, fit_value

SAMPLE_SIZE = 20_000
CHUNK = 5000
DEFAULT_HORIZON_DAYS = 90
NEVER_DAYS = 3650.0  # recency of a profile with no event yet


def rfm_rows(*, as_of: datetime, horizon_days: int, with_outcome: bool) -> Iterator[tuple[int, Row | None]]:
    """(profile id, Row) per active profile; Row is None when the profile had no event before `as_of`."""
    before = Q(events__occurred_at__lt=as_of)
    aggregates = {
        "last": Max("events__occurred_at", filter=before),
        "frequency": Count("events", filter=before & Q(events__occurred_at__gte=as_of - timedelta(days=365))),
        "monetary": Sum("events__revenue", filter=before),
    }
    if with_outcome:
        after = Q(events__occurred_at__gte=as_of, events__occurred_at__lt=as_of + timedelta(days=horizon_days))
        aggregates["future"] = Count("events", filter=after)
        aggregates["future_value"] = Sum("events__revenue", filter=after)
    rows = Profile.objects.filter(status=Profile.ACTIVE).order_by().annotate(**aggregates)
    for values in rows.values("id", *aggregates).iterator(chunk_size=CHUNK):
        last = values["last"]
        if last is None and with_outcome:
            yield values["id"], None
            continue
        yield (
            values["id"],
            Row(
                recency_days=(as_of - last).total_seconds() / 86400 if last else NEVER_DAYS,
                frequency=float(values["frequency"] or 0),
                monetary=float(values["monetary"] or 0),
                churned=with_outcome and not values["future"],
                future_value=float(values.get("future_value") or 0) if with_outcome else 0.0,
            ),
        )


def _sample(rows: Iterator[tuple[int, Row | None]], size: int, seed: int) -> list[Row]:
    """A uniform sample of the known rows, in bounded memory (reservoir sampling)."""
    rng, sample, seen = random.Random(seed), [], 0
    for _profile_id, row in rows:
        if row is None:
            continue
        seen += 1
        if len(sample) < size:
            sample.append(row)
        elif (slot := rng.randrange(seen)) < size:
            sample[slot] = row
    return sample


@transaction.atomic
def predictive_trait_refresh(*, trait: ComputedTrait, now: datetime | None = None, seed: int = 7) -> PredictiveFit:
    """Fit on history up to now minus the horizon, score every active profile as of now."""
    if trait.kind not in ComputedTrait.PREDICTIVE_KINDS:
        raise ValueError(f"{trait.key} is not a predictive trait")
    now = now or timezone.now()
    horizon = trait.within_last_days or DEFAULT_HORIZON_DAYS
    as_of = now - timedelta(days=horizon)
    sample = _sample(rfm_rows(as_of=as_of, horizon_days=horizon, with_outcome=True), SAMPLE_SIZE, seed)
    if len(sample) < 20:
        raise ValueError(
            f"{trait.key}: only {len(sample)} profiles have history before {as_of:%Y-%m-%d}; too few to fit"
        )
    fit: Fit = fit_churn(sample, seed=seed) if trait.kind == ComputedTrait.CHURN_RISK else fit_value(sample, seed=seed)
    record = PredictiveFit.objects.create(
        trait=trait, fitted_at=now, as_of=as_of, horizon_days=horizon, model=fit.as_dict(), sample_size=len(sample)
    )
    ComputedTraitValue.objects.filter(trait=trait).delete()
    batch, fields = [], ["trait", "profile", "value", "computed_at"]
    for profile_id, row in rfm_rows(as_of=now, horizon_days=horizon, with_outcome=False):
        batch.append((trait.pk, profile_id, round(fit.predict(row), 4), now))
        if len(batch) >= CHUNK:
            insert_rows(ComputedTraitValue, fields, batch)
            batch = []
    insert_rows(ComputedTraitValue, fields, batch)
    ComputedTrait.objects.filter(pk=trait.pk).update(last_computed_at=now)
    return record


def predictive_traits_refresh_all(*, now: datetime | None = None) -> dict[str, dict]:
    """The daily refit: every predictive trait; the metrics of each fit."""
    results = {}
    for trait in ComputedTrait.objects.filter(kind__in=ComputedTrait.PREDICTIVE_KINDS).order_by("key"):
        try:
            results[trait.key] = predictive_trait_refresh(trait=trait, now=now).model["metrics"]
        except ValueError as error:
            results[trait.key] = {"error": str(error)}
    return results

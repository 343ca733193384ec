"""Filters for the merge-review queue, shared by the review pages and the API."""

from datetime import timedelta

import django_filters
from django.db.models import Q
from django.utils import timezone

from identity.models import IdentityLink
from profiles.models import Source

REVIEWABLE = (IdentityLink.PENDING_REVIEW, IdentityLink.BLOCKED)

# (value, label, lower bound inclusive, upper bound exclusive): confidences and merge confidences.
CONFIDENCE_BANDS = (
    ("low", "below 0.50", None, 0.5),
    ("medium", "0.50 to 0.80", 0.5, 0.8),
    ("high", "0.80 to 0.95", 0.8, 0.95),
    ("certain", "0.95 and above", 0.95, None),
)

AGES = (
    ("24h", "Last 24 hours"),
    ("7d", "Last 7 days"),
    ("older", "Older than 7 days"),
)


def confidence_band_q(field: str, band: str) -> Q:
    """The condition that puts `field` in one of CONFIDENCE_BANDS."""
    for value, _label, lower, upper in CONFIDENCE_BANDS:
        if value == band:
            condition = Q()
            if lower is not None:
                condition &= Q(**{f"{field}__gte": lower})
            if upper is not None:
                condition &= Q(**{f"{field}__lt": upper})
            return condition
    raise ValueError(f"unknown confidence band {band!r}")


def _queue_rules():
    """The rules of links waiting in the queue (the status index keeps this cheap)."""
    rules = (
        IdentityLink.objects.filter(status__in=REVIEWABLE).order_by("rule").values_list("rule", flat=True).distinct()
    )
    return [(rule, rule) for rule in rules]


def _sources():
    return [(slug, name) for slug, name in Source.objects.order_by("name").values_list("slug", "name")]


class ReviewLinkFilter(django_filters.FilterSet):
    """Links waiting for a person: pending review and conflicts (blocked by a limit), both by default."""

    status = django_filters.ChoiceFilter(
        choices=((IdentityLink.PENDING_REVIEW, "Pending review"), (IdentityLink.BLOCKED, "Conflict")),
        empty_label="Pending and conflicts",
    )
    source = django_filters.ChoiceFilter(
        choices=_sources, method="filter_source", label="Source", empty_label="Any source"
    )
    rule = django_filters.ChoiceFilter(choices=_queue_rules, empty_label="Any rule")
    kind = django_filters.ChoiceFilter(choices=IdentityLink.KINDS, empty_label="Any kind")
    confidence = django_filters.ChoiceFilter(
        choices=[(value, label) for value, label, _lower, _upper in CONFIDENCE_BANDS],
        method="filter_confidence",
        label="Confidence",
        empty_label="Any confidence",
    )
    age = django_filters.ChoiceFilter(choices=AGES, method="filter_age", label="Age", empty_label="Any age")

    class Meta:
        model = IdentityLink
        fields = ["status", "source", "rule", "kind", "confidence", "age"]

    def __init__(self, data=None, queryset=None, **kwargs):
        # Whatever is asked, bound or not, the queue holds only links that wait for a decision.
        queryset = IdentityLink.objects.all() if queryset is None else queryset
        super().__init__(data, queryset.filter(status__in=REVIEWABLE), **kwargs)

    def filter_source(self, queryset, name, value: str):
        # Deterministic links name the source of their evidence; probabilistic ones (a match run)
        # do not, so the source that provided either end's identifier counts too.
        return queryset.filter(
            Q(evidence__source=value) | Q(from_identifier__source__slug=value) | Q(to_identifier__source__slug=value)
        )

    def filter_confidence(self, queryset, name, value):
        return queryset.filter(confidence_band_q("confidence", value))

    def filter_age(self, queryset, name, value):
        now = timezone.now()
        if value == "24h":
            return queryset.filter(created_at__gte=now - timedelta(hours=24))
        if value == "7d":
            return queryset.filter(created_at__gte=now - timedelta(days=7))
        return queryset.filter(created_at__lt=now - timedelta(days=7))

"""Demo audiences, so a fresh `make run` shows segments, computed traits and memberships."""

from __future__ import annotations

from segments.computed import computed_trait_create, computed_trait_refresh
from segments.membership import segment_membership_refresh
from segments.models import ComputedTrait, Segment
from segments.services import segment_create

COMPUTED = [
    dict(key="classes_attended", name="Classes attended", kind="count", event_type="class.attended"),
    dict(
        key="favourite_class",
        name="Favourite class",
        kind="most_frequent",
        event_type="class.attended",
        property="class_name",
    ),
]
SEGMENTS = [
    dict(
        slug="regulars",
        name="Regulars who said yes to email",
        definition={
            "all": [
                {"computed": "classes_attended", "op": "gte", "value": 5},
                {"consent": "email_marketing"},
            ]
        },
    ),
    dict(
        slug="text-ready-londoners",
        name="Londoners we may text",
        definition={
            "all": [
                {"trait": "city", "op": "in", "value": ["London", "Manchester"]},
                {"identifier": "phone"},
                {"consent": "sms_marketing"},
            ]
        },
    ),
    dict(
        slug="buyers-without-classes",
        name="Buyers who never attended a class",
        definition={"all": [{"event": "order.completed"}, {"not": {"event": "class.attended"}}]},
        holdout_percent=10,
    ),
]


def demo_segments_create() -> list[str]:
    """Create (once) and compute the demo computed traits and segments; returns what was created."""
    created = []
    for spec in COMPUTED:
        if not ComputedTrait.objects.filter(key=spec["key"]).exists():
            computed_trait_create(**spec)
            created.append(spec["key"])
    for trait in ComputedTrait.objects.exclude(kind__in=ComputedTrait.PREDICTIVE_KINDS):
        computed_trait_refresh(trait=trait)
    for spec in SEGMENTS:
        if not Segment.objects.filter(slug=spec["slug"]).exists():
            segment_create(**spec, note="Demo audience", author="demo_setup")
            created.append(spec["slug"])
    for segment in Segment.objects.filter(published_version__isnull=False):
        segment_membership_refresh(segment=segment)
    return created

"""Computed traits: aggregates of a profile's events, materialised per profile.

The database computes every value (one aggregate query per trait); rows are streamed back in
chunks and written in bulk, so memory stays flat however many profiles there are. Counts and sums
are 0 for profiles without a matching event (so "fewer than 2 orders" finds them); first, last and
most frequent values are absent there.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count, F, Sum, Window
from django.db.models.fields.json import KeyTransform
from django.db.models.functions import RowNumber
from django.utils import timezone

from cdp_site.db import insert_rows
from profiles.models import Event, Profile
from segments import domain
from segments.compiler import JsonNumber, _property_filters
from segments.models import ComputedTrait, ComputedTraitValue

CHUNK = 5000


class ComputedTraitInvalid(ValueError):
    def __init__(self, errors: list[domain.DefinitionError]):
        self.errors = errors
        super().__init__("; ".join(f"{error.path or 'trait'}: {error.message}" for error in errors))


def computed_trait_errors(*, kind: str, event_type: str, property: str, where, within_last_days) -> list:
    """Problems of a computed trait's definition, in the segment grammar's words."""
    from segments.selectors import definition_context

    if kind in ComputedTrait.PREDICTIVE_KINDS:  # over all events: only the horizon to check
        if within_last_days is not None and (not isinstance(within_last_days, int) or within_last_days < 1):
            return [domain.DefinitionError("within_last_days", "The horizon must be a whole number of days above 0.")]
        return []
    condition = {"event": event_type}
    if where:
        condition["where"] = where
    if within_last_days is not None:
        condition["within_last_days"] = within_last_days
    context = definition_context()
    errors = domain.validate_definition(
        condition, event_types=context["event_types"], identifier_types=None, segments=None
    )
    if kind not in dict(ComputedTrait.KINDS):
        kinds = ", ".join(dict(ComputedTrait.KINDS))
        errors.append(domain.DefinitionError("kind", f"Unknown kind '{kind}'. Use one of: {kinds}."))
    if kind != ComputedTrait.COUNT and not property:
        errors.append(domain.DefinitionError("property", f"A {kind} needs the event property it reads."))
    return errors


@transaction.atomic
def computed_trait_create(
    *, key: str, name: str, kind: str, event_type: str, property: str = "", where=None, within_last_days=None
) -> ComputedTrait:
    errors = computed_trait_errors(
        kind=kind, event_type=event_type, property=property, where=where, within_last_days=within_last_days
    )
    if errors:
        raise ComputedTraitInvalid(errors)
    return ComputedTrait.objects.create(
        key=key,
        name=name,
        kind=kind,
        event_type=event_type,
        property=property,
        where=where or [],
        within_last_days=within_last_days,
        created_at=timezone.now(),
    )


def _events(trait: ComputedTrait, now: datetime, profile_ids: list[int] | None):
    events = Event.objects.filter(type=trait.event_type, profile__status=Profile.ACTIVE).filter(
        _property_filters(trait.where)
    )
    if trait.within_last_days is not None:
        events = events.filter(occurred_at__gte=now - timedelta(days=trait.within_last_days), occurred_at__lte=now)
    if profile_ids is not None:
        events = events.filter(profile_id__in=profile_ids)
    return events.order_by()


def _values(trait: ComputedTrait, events):
    """(profile id, value) rows, computed by the database."""
    if trait.kind == ComputedTrait.COUNT:
        return events.values("profile_id").annotate(value=Count("id")).values_list("profile_id", "value")
    if trait.kind == ComputedTrait.SUM:
        return (
            events.values("profile_id")
            .annotate(value=Sum(JsonNumber("properties", (trait.property,))))
            .values_list("profile_id", "value")
        )
    prop = KeyTransform(trait.property, "properties")
    present = events.filter(**{f"properties__{trait.property}__isnull": False})
    if trait.kind in (ComputedTrait.FIRST, ComputedTrait.LAST):
        order = F("occurred_at").asc() if trait.kind == ComputedTrait.FIRST else F("occurred_at").desc()
        tiebreak = F("id").asc() if trait.kind == ComputedTrait.FIRST else F("id").desc()
        ranked = present.annotate(
            value=prop, rank=Window(RowNumber(), partition_by=[F("profile_id")], order_by=[order, tiebreak])
        )
        return ranked.filter(rank=1).values_list("profile_id", "value")
    # Most frequent: count per (profile, value), then the top value per profile (ties: the lowest value).
    counted = present.annotate(value=prop).values("profile_id", "value").annotate(n=Count("id"))
    ranked = counted.annotate(
        rank=Window(RowNumber(), partition_by=[F("profile_id")], order_by=[F("n").desc(), F("value").asc()])
    )
    return ranked.filter(rank=1).values_list("profile_id", "value")


@transaction.atomic
def computed_trait_refresh(
    *, trait: ComputedTrait, now: datetime | None = None, profile_ids: list[int] | None = None
) -> int:
    """Recompute one computed trait for every active profile, or only `profile_ids`. Returns the
    rows written. Running it twice writes the same values."""
    now = now or timezone.now()
    # Two refreshes of one trait at once (the schedule on two clusters, a batch's real-time refresh)
    # would each delete, then insert rows the other's delete could not see: one at a time.
    ComputedTrait.objects.select_for_update().filter(pk=trait.pk).values_list("pk", flat=True).first()
    stale = ComputedTraitValue.objects.filter(trait=trait)
    if profile_ids is not None:
        stale = stale.filter(profile_id__in=profile_ids)
    stale.delete()
    written = 0
    batch = []
    fields = ["trait", "profile", "value", "computed_at"]
    for profile_id, value in _values(trait, _events(trait, now, profile_ids)).iterator(chunk_size=CHUNK):
        if trait.kind == ComputedTrait.SUM:  # non-numbers add nothing; a whole sum stays an integer
            value = 0 if value is None else int(value) if float(value).is_integer() else float(value)
        batch.append((trait.pk, profile_id, value, now))
        if len(batch) >= CHUNK:
            insert_rows(ComputedTraitValue, fields, batch)
            written, batch = written + len(batch), []
    insert_rows(ComputedTraitValue, fields, batch)
    written += len(batch)
    if trait.kind in (ComputedTrait.COUNT, ComputedTrait.SUM):
        written += _write_zeros(trait, now, profile_ids)
    if profile_ids is None:
        ComputedTrait.objects.filter(pk=trait.pk).update(last_computed_at=now)
    return written


def _write_zeros(trait: ComputedTrait, now: datetime, profile_ids) -> int:
    """Counts and sums are 0 for active profiles without a matching event: one INSERT ... SELECT."""
    table = connection.ops.quote_name(ComputedTraitValue._meta.db_table)
    profiles = connection.ops.quote_name(Profile._meta.db_table)
    value_field = ComputedTraitValue._meta.get_field("value")
    scope, params = "", [trait.pk, value_field.get_db_prep_save(0, connection), now, Profile.ACTIVE, trait.pk]
    if profile_ids is not None:
        scope = f" AND p.id IN ({', '.join(['%s'] * len(profile_ids))})"
        params.extend(profile_ids)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (trait_id, profile_id, value, computed_at) "  # noqa: S608
            f"SELECT %s, p.id, %s, %s FROM {profiles} p WHERE p.status = %s "
            f"AND NOT EXISTS (SELECT 1 FROM {table} v WHERE v.trait_id = %s AND v.profile_id = p.id){scope}",
            params,
        )
        return cursor.rowcount


def computed_traits_refresh_all(*, now: datetime | None = None) -> dict[str, tuple[int, float]]:
    """The scheduled refresh: every computed trait (predictive ones refit daily on their own),
    (rows written, seconds) per key."""
    results = {}
    for trait in ComputedTrait.objects.exclude(kind__in=ComputedTrait.PREDICTIVE_KINDS).order_by("key"):
        started = time.perf_counter()
        written = computed_trait_refresh(trait=trait, now=now)
        results[trait.key] = (written, time.perf_counter() - started)
    return results

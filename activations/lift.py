"""Lift of a sync or trigger against its holdout: conversion of treatment vs control.

Sync (intention to treat): everyone who entered the sync's segment in [since, until), treatment the
members outside the holdout, control the holdout members, whether or not the sync reached them.
Trigger: treatment the sends with status "sent", control the sends skipped for the holdout (sends
skipped for consent, caps and so on, or that failed, are in neither group).

A person converts when they have an event of the chosen type (matching the property filters) with
occurred_at in (start, start + window], start being the segment entry (sync) or the send's
created_at (trigger). People are counted by the membership's or send's profile id, once per group
even with several entries or sends; events that a later merge moved to another profile are missed.

Everything is counted in the database (EXISTS subqueries and aggregates).

Statistics: absolute lift is the difference of proportions with Newcombe's hybrid score interval
(method 10, from two Wilson intervals), which behaves at small counts and rates near 0 or 1; relative
lift is the risk ratio minus one with the log risk ratio ± 1.96·SE interval (none when a group has no
conversions).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Exists, OuterRef, Q

from activations import domain
from activations.models import Sync, Trigger, TriggerSend
from profiles.models import Event, EventContract
from segments.compiler import property_filters
from segments.models import SegmentMembership

Z = 1.959963984540054  # two-sided 95 %
MIN_GROUP = 30
MAX_WINDOW_DAYS = 90
WHERE_OPS = ("eq", "neq", "gt", "gte", "lt", "lte", "in", "contains", "exists", "not_exists")

SIGNIFICANT_BETTER = "significant: treatment converts better"
SIGNIFICANT_WORSE = "significant: treatment converts worse"
NOT_SIGNIFICANT = "not significant yet"
NOT_ENOUGH_DATA = "not enough data"
ABSOLUTE_METHOD = "difference of proportions, Newcombe hybrid score 95% interval"
RELATIVE_METHOD = "risk ratio − 1, log risk ratio ± 1.96·SE 95% interval"


@dataclass(frozen=True)
class Lift:
    event_type: str
    where: list
    window_days: int
    since: datetime | None
    until: datetime | None
    treatment_n: int
    treatment_conversions: int
    control_n: int
    control_conversions: int
    treatment_rate: float | None
    control_rate: float | None
    absolute_lift: float | None
    absolute_ci_low: float | None
    absolute_ci_high: float | None
    relative_lift: float | None
    relative_ci_low: float | None
    relative_ci_high: float | None
    verdict: str
    explanation: str
    absolute_method: str = ABSOLUTE_METHOD
    relative_method: str = RELATIVE_METHOD

    @property
    def is_significant(self) -> bool:
        return self.verdict.startswith("significant")

    def as_dict(self) -> dict:
        return asdict(self)


# -- statistics -------------------------------------------------------------------------------------


def wilson_interval(successes: int, n: int, z: float = Z) -> tuple[float, float]:
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_interval(x1: int, n1: int, x2: int, n2: int, z: float = Z) -> tuple[float, float]:
    """95 % interval of p1 − p2 (Newcombe 1998, method 10: hybrid score from Wilson intervals)."""
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson_interval(x1, n1, z)
    l2, u2 = wilson_interval(x2, n2, z)
    difference = p1 - p2
    return (
        difference - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
        difference + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
    )


def risk_ratio_interval(x1: int, n1: int, x2: int, n2: int, z: float = Z) -> tuple[float, float] | None:
    """95 % interval of p1 / p2 from log(RR) ± z·SE; None when either group has no conversions."""
    if not x1 or not x2:
        return None
    log_ratio = math.log((x1 / n1) / (x2 / n2))
    se = math.sqrt(1 / x1 - 1 / n1 + 1 / x2 - 1 / n2)
    return math.exp(log_ratio - z * se), math.exp(log_ratio + z * se)


def lift_from_counts(*, treatment_n: int, treatment_conversions: int, control_n: int, control_conversions: int):
    """Rates, lifts, intervals and verdict for the four counts (a dict of the Lift fields they decide)."""
    xt, nt, xc, nc = treatment_conversions, treatment_n, control_conversions, control_n
    values = dict.fromkeys(
        (
            "treatment_rate",
            "control_rate",
            "absolute_lift",
            "absolute_ci_low",
            "absolute_ci_high",
            "relative_lift",
            "relative_ci_low",
            "relative_ci_high",
        )
    )
    if nt:
        values["treatment_rate"] = xt / nt
    if nc:
        values["control_rate"] = xc / nc
    if nt and nc:
        values["absolute_lift"] = xt / nt - xc / nc
        values["absolute_ci_low"], values["absolute_ci_high"] = newcombe_interval(xt, nt, xc, nc)
        if xc:
            values["relative_lift"] = (xt / nt) / (xc / nc) - 1
        ratio = risk_ratio_interval(xt, nt, xc, nc)
        if ratio:
            values["relative_ci_low"], values["relative_ci_high"] = ratio[0] - 1, ratio[1] - 1
    if nt < MIN_GROUP or nc < MIN_GROUP or xt + xc == 0:
        verdict = NOT_ENOUGH_DATA
    elif values["absolute_ci_low"] > 0:
        verdict = SIGNIFICANT_BETTER
    elif values["absolute_ci_high"] < 0:
        verdict = SIGNIFICANT_WORSE
    else:
        verdict = NOT_SIGNIFICANT
    values["verdict"] = verdict
    return values


# -- input checks -----------------------------------------------------------------------------------


def _check_inputs(*, event_type, where, window_days, since, until) -> list:
    if not isinstance(window_days, int) or isinstance(window_days, bool) or not 1 <= window_days <= MAX_WINDOW_DAYS:
        raise ValueError(f"window_days must be a whole number of days from 1 to {MAX_WINDOW_DAYS}.")
    if not event_type or not EventContract.objects.filter(event_type=event_type).exists():
        raise ValueError(f"Unknown event type {event_type!r}: pick one that has an event contract.")
    if since is not None and until is not None and since >= until:
        raise ValueError("since must be before until.")
    return _checked_where(where)


def _checked_where(where) -> list:
    if where is None:
        return []
    if not isinstance(where, list):
        raise ValueError('where must be a list of property filters: [{"property", "op", "value"}].')
    for index, condition in enumerate(where, start=1):
        name = condition.get("property") if isinstance(condition, dict) else None
        if not isinstance(name, str) or not name:
            raise ValueError(f"where filter {index}: needs a property name.")
        op, value = condition.get("op"), condition.get("value")
        if op not in WHERE_OPS:
            raise ValueError(f"where filter {index}: op must be one of {', '.join(WHERE_OPS)}.")
        if op in ("gt", "gte", "lt", "lte") and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValueError(f"where filter {index}: {op} needs a number.")
        if op == "in" and (not isinstance(value, list) or not value):
            raise ValueError(f"where filter {index}: in needs a non-empty list.")
        if op in ("eq", "neq", "contains") and (value is None or isinstance(value, dict | list)):
            raise ValueError(f"where filter {index}: {op} needs a text, number or true/false value.")
    return where


def _where_q(where: list) -> Q:
    """The filters as SQL over Event.properties (the segment compiler's JSON predicates)."""
    translated = []
    for condition in where:
        if condition["op"] == "not_exists":
            translated.append({"property": condition["property"], "op": "exists", "value": False})
        elif condition["op"] == "exists":
            translated.append({"property": condition["property"], "op": "exists", "value": True})
        else:
            translated.append(condition)
    return property_filters(translated)


def _converted(*, start_field: str, event_type: str, where: list, window_days: int) -> Exists:
    start = OuterRef(start_field)
    events = Event.objects.filter(
        profile_id=OuterRef("profile_id"),
        type=event_type,
        occurred_at__gt=start,
        occurred_at__lte=start + timedelta(days=window_days),
    )
    if where:
        events = events.filter(_where_q(where))
    return Exists(events.order_by().values("pk"))


def _counts(rows, *, treatment: Q, control: Q) -> dict:
    people = "profile_id"
    totals = rows.order_by().aggregate(
        treatment_n=Count(people, filter=treatment, distinct=True),
        treatment_conversions=Count(people, filter=treatment & Q(converted=True), distinct=True),
        control_n=Count(people, filter=control, distinct=True),
        control_conversions=Count(people, filter=control & Q(converted=True), distinct=True),
    )
    return {name: value or 0 for name, value in totals.items()}


def _window_text(since, until) -> str:
    if since and until:
        return f"from {since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M}"
    if since:
        return f"since {since:%Y-%m-%d %H:%M}"
    if until:
        return f"before {until:%Y-%m-%d %H:%M}"
    return "at any time"


def _event_text(event_type: str, where: list, window_days: int) -> str:
    filters = ""
    if where:
        filters = " where " + " and ".join(
            f"{c['property']} {c['op']}" + (f" {c.get('value')}" if "value" in c else "") for c in where
        )
    return f"a {event_type} event{filters} within {window_days} day{'s' if window_days != 1 else ''}"


# -- sync and trigger -------------------------------------------------------------------------------


def lift_for_sync(sync: Sync, *, event_type: str, where=None, window_days: int = 7, since=None, until=None) -> Lift:
    where = _check_inputs(event_type=event_type, where=where, window_days=window_days, since=since, until=until)
    segment = sync.segment
    memberships = SegmentMembership.objects.filter(segment_id=segment.pk)
    if not segment.holdout_percent and not memberships.filter(is_holdout=True).exists():
        raise ValueError(f"Segment {segment.slug} has no holdout: set its holdout percent to measure lift.")
    if since is not None:
        memberships = memberships.filter(entered_at__gte=since)
    if until is not None:
        memberships = memberships.filter(entered_at__lt=until)
    rows = memberships.annotate(
        converted=_converted(start_field="entered_at", event_type=event_type, where=where, window_days=window_days)
    )
    counts = _counts(rows, treatment=Q(is_holdout=False), control=Q(is_holdout=True))
    explanation = (
        f"People who entered segment {segment.slug} {_window_text(since, until)}: members outside the holdout "
        f"(whether or not the sync reached them) against the holdout, converting on "
        f"{_event_text(event_type, where, window_days)} of entering."
    )
    return Lift(
        event_type=event_type,
        where=where,
        window_days=window_days,
        since=since,
        until=until,
        explanation=explanation,
        **counts,
        **lift_from_counts(**counts),
    )


def lift_for_trigger(
    trigger: Trigger, *, event_type: str, where=None, window_days: int = 7, since=None, until=None
) -> Lift:
    where = _check_inputs(event_type=event_type, where=where, window_days=window_days, since=since, until=until)
    sends = TriggerSend.objects.filter(trigger_id=trigger.pk)
    holdout_sends = Q(status=TriggerSend.SKIPPED, skip_reason=domain.SKIP_HOLDOUT)
    percent = trigger.segment.holdout_percent if trigger.segment_id else trigger.holdout_percent
    if not percent and not sends.filter(holdout_sends).exists():
        raise ValueError(f"Trigger {trigger.slug} has no holdout: set a holdout percent to measure lift.")
    if since is not None:
        sends = sends.filter(created_at__gte=since)
    if until is not None:
        sends = sends.filter(created_at__lt=until)
    rows = sends.annotate(
        converted=_converted(start_field="created_at", event_type=event_type, where=where, window_days=window_days)
    )
    counts = _counts(rows, treatment=Q(status=TriggerSend.SENT), control=holdout_sends)
    explanation = (
        f"Sends of trigger {trigger.slug} {_window_text(since, until)}: people sent the message against people "
        f"held back for the holdout, converting on {_event_text(event_type, where, window_days)} of the send."
    )
    return Lift(
        event_type=event_type,
        where=where,
        window_days=window_days,
        since=since,
        until=until,
        explanation=explanation,
        **counts,
        **lift_from_counts(**counts),
    )

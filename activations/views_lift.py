"""Lift pages: conversion of treatment vs holdout for one sync or one trigger."""

from django.contrib.auth.decorators import login_required, permission_required
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from activations.forms import LiftForm
from activations.lift import lift_for_sync, lift_for_trigger
from activations.models import Sync, Trigger


def percent(value, *, signed=False, unit="%") -> str:
    if value is None:
        return "–"
    return f"{value * 100:{'+' if signed else ''}.1f}{unit}"


def _interval(low, high, unit="%") -> str:
    if low is None:
        return "–"
    return f"{percent(low, signed=True, unit=unit)} to {percent(high, signed=True, unit=unit)}"


def _display(result) -> dict:
    """The numbers as the page shows them (percentages, one decimal)."""
    return {
        "treatment_rate": percent(result.treatment_rate),
        "control_rate": percent(result.control_rate),
        "absolute": percent(result.absolute_lift, signed=True, unit=" pp"),
        "absolute_ci": _interval(result.absolute_ci_low, result.absolute_ci_high, unit=" pp"),
        "relative": percent(result.relative_lift, signed=True),
        "relative_ci": _interval(result.relative_ci_low, result.relative_ci_high),
    }


def _lift_page(request, *, measure, subject, kind, back_url):
    form = LiftForm(request.GET or None, initial={"window_days": 7})
    result = error = None
    status = 200
    if form.is_bound:
        if form.is_valid():
            try:
                result = measure(subject, **form.measure_kwargs())
            except ValueError as problem:
                error = str(problem)
        else:
            status = 400
    context = {
        "form": form,
        "result": result,
        "shown": _display(result) if result else None,
        "error": error,
        "subject": subject,
        "kind": kind,
        "back_url": back_url,
    }
    return render(request, "activations/lift.html", context, status=status)


@login_required
@permission_required("activations.view_syncrun", raise_exception=True)
def sync_lift(request, slug):
    sync = get_object_or_404(Sync.objects.select_related("segment"), slug=slug)
    back = reverse("activations:sync_detail", args=[sync.slug])
    return _lift_page(request, measure=lift_for_sync, subject=sync, kind="sync", back_url=back)


@login_required
@permission_required("activations.view_triggersend", raise_exception=True)
def trigger_lift(request, slug):
    trigger = get_object_or_404(Trigger.objects.select_related("segment"), slug=slug)
    back = reverse("activations:trigger_detail", args=[trigger.slug])
    return _lift_page(request, measure=lift_for_trigger, subject=trigger, kind="trigger", back_url=back)

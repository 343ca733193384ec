"""Trigger pages: list, detail (configuration, recent sends, latency), create and edit."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render

from activations.forms import TriggerForm
from activations.models import Trigger, TriggerSend
from activations.selectors import TRIGGER_SKIP_LABELS, labelled_counts
from activations.triggers import TriggerInvalid, trigger_latency, trigger_save

RECENT_SENDS = 50


@login_required
@permission_required("activations.view_trigger", raise_exception=True)
def trigger_list(request):
    triggers = (
        Trigger.objects.select_related("destination", "segment")
        .annotate(
            sent=Count("sends", filter=Q(sends__status=TriggerSend.SENT)),
            failed=Count("sends", filter=Q(sends__status=TriggerSend.FAILED)),
            skipped=Count("sends", filter=Q(sends__status=TriggerSend.SKIPPED)),
        )
        .order_by("name")
    )
    return render(request, "activations/trigger_list.html", {"triggers": triggers})


@login_required
@permission_required("activations.view_trigger", raise_exception=True)
def trigger_detail(request, slug):
    trigger = get_object_or_404(Trigger.objects.select_related("destination", "segment", "owner"), slug=slug)
    context = {"trigger": trigger, "can_see_sends": request.user.has_perm("activations.view_triggersend")}
    if context["can_see_sends"]:
        statuses = dict(TriggerSend.STATUSES)
        counts = dict(trigger.sends.order_by().values_list("status").annotate(n=Count("id")))
        skips = dict(
            trigger.sends.filter(status=TriggerSend.SKIPPED)
            .order_by()
            .values_list("skip_reason")
            .annotate(n=Count("id"))
        )
        context.update(
            latency=trigger_latency(trigger),
            counts=[{"status": code, "label": statuses[code], "count": counts.get(code, 0)} for code in statuses],
            skipped=labelled_counts(skips, TRIGGER_SKIP_LABELS),
            sends=trigger.sends.order_by("-created_at", "-id")[:RECENT_SENDS],
            can_see_profiles=request.user.has_perm("profiles.view_profile"),
        )
    return render(request, "activations/trigger_detail.html", context)


def _form_page(request, form, trigger=None, status=200):
    return render(request, "activations/trigger_form.html", {"form": form, "trigger": trigger}, status=status)


@login_required
@permission_required("activations.add_trigger", raise_exception=True)
def trigger_new(request):
    initial = {"template": {"type": "trigger.fired"}, "where": []}
    form = TriggerForm(request.POST or None, initial=initial)
    if request.method == "POST":
        if form.is_valid():
            try:
                values = form.service_values()
                values["owner"] = values.get("owner") or request.user
                trigger = trigger_save(**values)
            except TriggerInvalid as error:
                form.add_service_errors(error.errors)
            else:
                messages.success(request, f"Trigger {trigger.name} created.")
                return redirect("activations:trigger_detail", slug=trigger.slug)
        return _form_page(request, form, status=400)
    return _form_page(request, form)


@login_required
@permission_required("activations.change_trigger", raise_exception=True)
def trigger_edit(request, slug):
    trigger = get_object_or_404(Trigger.objects.select_related("destination", "segment"), slug=slug)
    form = TriggerForm(request.POST or None, instance=trigger)
    if request.method == "POST":
        if form.is_valid():
            try:
                trigger = trigger_save(trigger=form.instance, **form.service_values())
            except TriggerInvalid as error:
                form.add_service_errors(error.errors)
            else:
                messages.success(request, f"Trigger {trigger.name} saved.")
                return redirect("activations:trigger_detail", slug=trigger.slug)
        return _form_page(request, form, Trigger.objects.get(pk=trigger.pk), status=400)
    return _form_page(request, form, trigger)

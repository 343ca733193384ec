"""Data governance pages: retention policies with their purge log, and profile health.

Thin views over cdp_site.retention and cdp_site.health.
"""

from datetime import timedelta

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_POST

from cdp_site.audit import actor_of
from cdp_site.governance_models import RetentionPolicy
from cdp_site.health import (
    HISTORY_DEFAULT,
    RULES,
    profile_health_enqueue,
    profile_health_history,
    profile_health_latest,
    profile_health_report,
)
from cdp_site.retention import purge_runs, retention_policies, retention_policy_update

PURGE_LOG_LENGTH = 50
HISTORY_CHOICES = (7, HISTORY_DEFAULT, 90)


class RetentionPolicyForm(forms.ModelForm):
    class Meta:
        model = RetentionPolicy
        fields = ["keep_days", "is_active"]
        labels = {"keep_days": "Keep for (days)", "is_active": "Active"}


def _fragment_or_page(request, page_template, fragment_template, context, status=200):
    if request.htmx and not request.htmx.boosted:
        return render(request, fragment_template, context, status=status)
    return render(request, page_template, context, status=status)


# -- retention ---------------------------------------------------------------------------------


def _retention_page(request, *, invalid: RetentionPolicyForm | None = None, status: int = 200):
    can_change = request.user.has_perm("cdp_site.change_retentionpolicy")
    now = timezone.now()
    rows = []
    for policy in retention_policies():
        form = None
        if can_change:
            bound = invalid is not None and invalid.prefix == policy.data_class
            form = invalid if bound else RetentionPolicyForm(instance=policy, prefix=policy.data_class)
        rows.append({"policy": policy, "cutoff": now - timedelta(days=policy.keep_days), "form": form})
    context = {
        "rows": rows,
        "can_change": can_change,
        "data_classes": RetentionPolicy.DATA_CLASSES,
        "runs": [_log_row(run) for run in purge_runs(limit=PURGE_LOG_LENGTH)],
        "log_length": PURGE_LOG_LENGTH,
    }
    return _fragment_or_page(
        request, "cdp_site/governance/retention.html", "cdp_site/governance/_purge_log.html", context, status
    )


def _log_row(run) -> dict:
    """A purge run with one cell per data class (None where its policy was off)."""
    cells = []
    for data_class, _ in RetentionPolicy.DATA_CLASSES:
        if data_class not in (run.cutoffs or {}):
            cells.append(None)
            continue
        cells.append(
            {
                "count": (run.counts or {}).get(data_class, 0),
                "cutoff": parse_datetime(run.cutoffs[data_class]),
                "keep_days": (run.keep_days or {}).get(data_class),
            }
        )
    return {"run": run, "cells": cells}


@login_required
@permission_required("cdp_site.view_retentionpolicy", raise_exception=True)
def retention(request):
    return _retention_page(request)


@login_required
@require_POST
@permission_required("cdp_site.change_retentionpolicy", raise_exception=True)
def retention_policy_edit(request, data_class):
    policy = RetentionPolicy.objects.filter(data_class=data_class).first()
    if policy is None:
        raise Http404("No such retention policy.")
    form = RetentionPolicyForm(request.POST, instance=policy, prefix=policy.data_class)
    if not form.is_valid():
        return _retention_page(request, invalid=form, status=400)
    retention_policy_update(
        data_class=policy.data_class,
        keep_days=form.cleaned_data["keep_days"],
        is_active=form.cleaned_data["is_active"],
        actor=actor_of(request),
    )
    messages.success(request, f"Retention of {policy.get_data_class_display().lower()} saved.")
    return redirect("governance:retention")


# -- profile health ----------------------------------------------------------------------------


@login_required
@permission_required("cdp_site.view_profilehealthrun", raise_exception=True)
def profile_health(request):
    text = request.GET.get("history", "")
    history_length = int(text) if text.isdigit() and int(text) in HISTORY_CHOICES else HISTORY_DEFAULT
    latest = profile_health_latest()
    history = profile_health_history(limit=history_length)
    context = {
        "latest": latest,
        "history": history,
        "history_length": history_length,
        "history_choices": HISTORY_CHOICES,
        "rules": profile_health_report(latest, history),
        "rule_labels": [rule.label for rule in RULES],
        "runs": [
            {"run": run, "counts": [(run.counts or {}).get(rule.slug) for rule in RULES]} for run in reversed(history)
        ],
    }
    return _fragment_or_page(
        request, "cdp_site/governance/profile_health.html", "cdp_site/governance/_health_results.html", context
    )


@login_required
@require_POST
@permission_required("cdp_site.add_profilehealthrun", raise_exception=True)
def profile_health_run_now(request):
    profile_health_enqueue(triggered_by=actor_of(request))
    messages.success(request, "Profile health check started: the results appear here when it finishes.")
    return redirect("governance:profile_health")

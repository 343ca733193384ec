"""Source audit pages: the ranking and overlap of all sources, one source's figures, the printable
integration plan, and the "Run audit now" button. Thin views over profiles.source_audit."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from cdp_site.audit import actor_of
from profiles.models import Source
from profiles.source_audit import (
    overlap_matrix,
    overlap_types,
    source_audit_enqueue,
    source_audit_latest,
)
from profiles.source_audit.plan import integration_plan as plan_build
from profiles.source_audit.plan import quality_gaps
from profiles.source_audit.scorecard import FORMULAS, WEIGHTS

VIEW = "profiles.view_source"
RUN = ("profiles.view_source", "profiles.change_source")


@login_required
@permission_required(VIEW, raise_exception=True)
def audit(request):
    run = source_audit_latest()
    figures = (run.figures or {}) if run else {}
    types = overlap_types(figures)
    chosen = request.GET.get("identifier_type", "all")
    if chosen not in types:
        chosen = "all"
    sources = figures.get("sources", {})
    context = {
        "run": run,
        "rows": [sources[slug] for slug in figures.get("ranking", [])],
        "overlap_types": types,
        "identifier_type": chosen,
        "overlap_columns": [sources[slug]["name"] for slug in figures.get("ranking", [])],
        "overlap_rows": overlap_matrix(figures, chosen) if run else [],
        "formulas": FORMULAS,
        "weights": WEIGHTS,
        "can_run": request.user.has_perms(RUN),
    }
    if request.htmx and not request.htmx.boosted:
        return render(request, "profiles/source_audit_overlap.html", context)
    return render(request, "profiles/source_audit.html", context)


@login_required
@permission_required(VIEW, raise_exception=True)
def source_audit(request, slug):
    source = get_object_or_404(Source, slug=slug)
    run = source_audit_latest()
    row = ((run.figures or {}).get("sources", {}) if run else {}).get(source.slug)
    context = {
        "source": source,
        "run": run,
        "row": row,
        "gaps": quality_gaps(row) if row else [],
        "formulas": FORMULAS,
        "can_run": request.user.has_perms(RUN),
    }
    return render(request, "profiles/source_audit_detail.html", context)


@login_required
@permission_required(VIEW, raise_exception=True)
def integration_plan(request):
    context = {**plan_build(source_audit_latest()), "formulas": FORMULAS}
    return render(request, "profiles/integration_plan.html", context)


@login_required
@require_POST
@permission_required(RUN, raise_exception=True)
def run(request):
    source_audit_enqueue(triggered_by=actor_of(request))
    messages.success(request, "Source audit started: the figures below update when it finishes.")
    return redirect("source_audit:audit")

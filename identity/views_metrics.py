"""Identity metrics and simulation pages: thin views over identity.metrics and identity.simulation."""

from datetime import timedelta

from django.contrib.auth.decorators import login_required, permission_required
from django.shortcuts import render
from django.utils.dateparse import parse_datetime

from identity.forms_simulation import SimulationRequest
from identity.metrics import (
    HISTORY_DEFAULT,
    identity_metric_history,
    identity_metrics,
    identity_metrics_latest,
    metric_trends,
    pair_matrix,
)

# The hourly snapshot is shown while it is this fresh; `?live=1` computes the figures now.
SNAPSHOT_FRESH_FOR = timedelta(hours=2)
PERIODS = ((24, "Last 24 snapshots"), (HISTORY_DEFAULT, "Last 168 (a week, hourly)"), (720, "Last 720 (30 days)"))


@login_required
@permission_required("identity.view_identitymetricsnapshot", raise_exception=True)
def metrics(request):
    periods = dict(PERIODS)
    text = request.GET.get("history", "")
    history = int(text) if text.isdigit() and int(text) in periods else HISTORY_DEFAULT
    latest = None if request.GET.get("live") == "1" else identity_metrics_latest(max_age=SNAPSHOT_FRESH_FOR)
    figures = latest.figures if latest else identity_metrics()
    snapshots = identity_metric_history(limit=history)
    context = {
        "figures": figures,
        "as_of": latest.captured_at if latest else None,
        "matrix": pair_matrix(figures["sources"], figures["pairs"]),
        "oldest_pending_at": parse_datetime(figures["review_backlog"]["oldest_created_at"] or ""),
        "trends": metric_trends(snapshots),
        "snapshots": snapshots,
        "periods": PERIODS,
        "history": history,
    }
    if request.htmx and not request.htmx.boosted:
        return render(request, "identity/_metrics_figures.html", context)
    return render(request, "identity/metrics.html", context)


@login_required
@permission_required("identity.view_identitymetricsnapshot", raise_exception=True)
def simulation(request):
    """Resolves uploaded exports in memory with draft rules; writes nothing."""
    form = SimulationRequest(request.POST or None, request.FILES or None)
    report = None
    if request.method == "POST" and form.is_valid():
        report = form.run()
    context = {"form": form, "report": report}
    if request.htmx and not request.htmx.boosted:
        return render(request, "identity/_simulation_result.html", context)
    return render(request, "identity/simulation.html", context)

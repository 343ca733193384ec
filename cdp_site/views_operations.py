"""The health dashboard (live figures with their trends, open alerts on top) and the alert pages.

Thin views over cdp_site.operations_trends (snapshots, series), cdp_site.alerts (rules, alerts) and
cdp_site.charts (server-side SVG).
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from cdp_site.alerts import (
    AlertRuleInvalid,
    alert_acknowledge,
    alert_history,
    alert_rule_delete,
    alert_rule_save,
    alert_rules,
    alerts_open,
    thresholds_by_metric,
)
from cdp_site.audit import actor_of
from cdp_site.charts import format_value, line_chart, sparkline
from cdp_site.form_errors import add_errors_to_form
from cdp_site.forms_operations import AlertRuleForm
from cdp_site.operations_metrics import collect_figures
from cdp_site.operations_models import Alert, AlertRule
from cdp_site.operations_trends import METRICS, RANGES, metric_series, parse_range, snapshots_in_range

HISTORY_LENGTH = 100

# The dashboard's sections: (title, scalar metrics charted one by one).
SECTIONS = (
    ("Identity", ("identity_coverage", "review_backlog")),
    (
        "Ingestion",
        (
            "ingestion_latency_p50",
            "ingestion_latency_p95",
            "ingestion_error_ratio",
            "ingestion_quarantine_ratio",
            "ingestion_pending",
            "ingestion_oldest_pending_age",
            "schema_drift_24h",
        ),
    ),
    (
        "Consent and deletion",
        (
            "consent_propagation_p95",
            "consent_propagation_open_failures",
            "deletion_propagation_success",
            "privacy_requests_overdue",
        ),
    ),
    ("Activations and workers", ("sync_failed_records_parked", "worker_queue_depth")),
    ("Storage", ("event_partitions_ahead", "event_default_partition_rows")),
)


def _fragment_or_page(request, page_template, fragment_template, context, status=200):
    if request.htmx and not request.htmx.boosted:
        return render(request, fragment_template, context, status=status)
    return render(request, page_template, context, status=status)


def _threshold_rule(rules: list[AlertRule], label: str = "") -> AlertRule | None:
    """The rule whose threshold a chart draws: one for this label, else one for every label."""
    for rule in rules:
        if rule.label == label:
            return rule
    return next((rule for rule in rules if not rule.label), None)


def _breaching(rules: list[AlertRule], value, label: str = "") -> bool:
    return any(rule.breached(value) for rule in rules if rule.label in ("", label))


def _scalar_panel(key, live, snapshots, rules, start, now) -> dict:
    metric = METRICS[key]
    (series,) = metric_series(metric, snapshots)
    rule = _threshold_rule(rules)
    current = metric.value(live)
    return {
        "metric": metric,
        "current": current,
        "current_text": format_value(current, metric.unit),
        "breaching": _breaching(rules, current),
        "rule": rule,
        "chart": line_chart(
            title=f"{metric.label}, {len(series.values)} snapshots",
            points=series.points,
            start=start,
            end=now,
            unit=metric.unit,
            threshold=rule.threshold if rule else None,
        ),
    }


def _trend_cells(key, snapshots, title) -> dict:
    metric = METRICS[key]
    return {
        series.label: sparkline(
            title=f"{title}: {series.label}", values=[value for _, value in series.points], unit=metric.unit
        )
        for series in metric_series(metric, snapshots)
    }


def _dashboard_context(range_key: str) -> dict:
    now = timezone.now()
    start = now - RANGES[range_key]
    live = collect_figures(now=now)
    snapshots = snapshots_in_range(range_key=range_key, now=now)
    thresholds = thresholds_by_metric()
    sections = [
        {
            "title": title,
            "panels": [_scalar_panel(key, live, snapshots, thresholds.get(key, []), start, now) for key in keys],
        }
        for title, keys in SECTIONS
    ]
    freshness_trends = _trend_cells("source_freshness_seconds", snapshots, "Freshness")
    freshness = [
        {
            **row,
            "age_text": format_value(row["seconds_since_last_event"], "seconds"),
            "sla_text": format_value(row["sla_minutes"] * 60, "seconds"),
            "trend": freshness_trends.get(row["source"]),
        }
        for row in live["freshness"]
    ]
    reconciliation_rules = thresholds.get("reconciliation_delta", [])
    reconciliation_trends = _trend_cells("reconciliation_delta", snapshots, "Reconciliation delta")
    reconciliation = [
        {
            **row,
            "delta_text": format_value(row["reconciliation_delta"], "ratio"),
            "breaching": _breaching(reconciliation_rules, row["reconciliation_delta"], row["destination"]),
            "trend": reconciliation_trends.get(row["destination"]),
        }
        for row in live["activations"]["destinations"]
    ]
    match_rules = thresholds.get("source_match_rate", [])
    match_trends = _trend_cells("source_match_rate", snapshots, "Match rate")
    match_rates = [
        {
            "source": slug,
            "rate": rate,
            "rate_text": format_value(rate, "ratio"),
            "breaching": _breaching(match_rules, rate, slug),
            "trend": match_trends.get(slug),
        }
        for slug, rate in live["identity"]["source_match_rates"].items()
    ]
    return {
        "range_key": range_key,
        "ranges": list(RANGES),
        "now": now,
        "start": start,
        "live": live,
        "snapshot_count": len(snapshots),
        "latest_snapshot_at": snapshots[-1][0] if snapshots else None,
        "sections": sections,
        "freshness": freshness,
        "freshness_breaches": sum(row["sla_breached"] for row in freshness),
        "reconciliation": reconciliation,
        "match_rates": match_rates,
        "open_alerts": alerts_open(),
    }


@login_required
@permission_required("cdp_site.view_operationssnapshot", raise_exception=True)
def dashboard(request):
    range_key = parse_range(request.GET.get("range"))
    return _fragment_or_page(
        request,
        "cdp_site/operations/dashboard.html",
        "cdp_site/operations/_dashboard.html",
        _dashboard_context(range_key),
    )


# -- alerts and rules ------------------------------------------------------------------------------


@login_required
@permission_required(("cdp_site.view_alertrule", "cdp_site.view_alert"), raise_exception=True)
def alert_list(request):
    return render(
        request,
        "cdp_site/operations/alert_list.html",
        {
            "open_alerts": alerts_open(),
            "rules": [{"rule": rule, "metric": METRICS.get(rule.metric)} for rule in alert_rules()],
            "history": alert_history(limit=HISTORY_LENGTH),
            "history_length": HISTORY_LENGTH,
        },
    )


def _rule_form_page(request, form, *, rule=None, status=200):
    return render(
        request,
        "cdp_site/operations/alert_rule_form.html",
        {"form": form, "rule": rule, "metrics": list(METRICS.values())},
        status=status,
    )


def _save_rule(request, *, rule=None):
    form = AlertRuleForm(request.POST, rule=rule)
    if form.is_valid():
        values, secret = form.service_values()
        try:
            saved = alert_rule_save(actor=actor_of(request), rule=rule, webhook_secret=secret, **values)
        except AlertRuleInvalid as error:
            add_errors_to_form(form, error.errors)
        else:
            verb = "created" if rule is None else "saved"
            messages.success(request, f"Alert rule “{saved.name}” {verb}: it is evaluated at every snapshot.")
            return redirect("operations:alert_list")
    return _rule_form_page(request, form, rule=rule, status=400)


@login_required
@permission_required("cdp_site.add_alertrule", raise_exception=True)
def alert_rule_new(request):
    if request.method == "POST":
        return _save_rule(request)
    initial = {}
    if request.GET.get("metric") in METRICS:
        metric = METRICS[request.GET["metric"]]
        initial = {"metric": metric.key, "comparison": metric.default_comparison}
    return _rule_form_page(request, AlertRuleForm(initial=initial or None))


@login_required
@permission_required("cdp_site.change_alertrule", raise_exception=True)
def alert_rule_edit(request, pk):
    rule = get_object_or_404(AlertRule, pk=pk)
    if request.method == "POST":
        return _save_rule(request, rule=rule)
    return _rule_form_page(request, AlertRuleForm(rule=rule), rule=rule)


@login_required
@require_POST
@permission_required("cdp_site.delete_alertrule", raise_exception=True)
def alert_rule_delete_view(request, pk):
    rule = get_object_or_404(AlertRule, pk=pk)
    name = rule.name
    alert_rule_delete(rule=rule, actor=actor_of(request))
    messages.success(request, f"Alert rule “{name}” and its alerts deleted.")
    return redirect("operations:alert_list")


@login_required
@require_POST
@permission_required("cdp_site.change_alert", raise_exception=True)
def alert_acknowledge_view(request, pk):
    alert = get_object_or_404(Alert, pk=pk)
    alert = alert_acknowledge(alert=alert, actor=actor_of(request))
    messages.success(request, f"Alert {alert.pk} acknowledged by {alert.acknowledged_by}.")
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect("operations:alert_list")

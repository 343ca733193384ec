"""Reconciliation (what was planned against what the destinations accepted) and the runbook.

The destination, sync and trigger pages live in views_destinations, views_syncs and views_triggers.
"""

import csv

from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.utils import timezone

from activations.models import SyncRun
from activations.selectors import (
    RECONCILIATION_DAYS,
    reconciliation_by_destination,
    reconciliation_csv_rows,
    reconciliation_runs,
    reconciliation_since,
    record_csv_rows,
    runbook,
    with_delta,
)
from cdp_site.audit import actor_of, audit_record

RECENT_RUNS = 200


class _Echo:
    """csv.writer target that hands each row back instead of buffering it."""

    def write(self, value):
        return value


def _days(request) -> int:
    text = request.GET.get("days", "")
    return min(max(int(text), 1), 366) if text.isdigit() else RECONCILIATION_DAYS


def _csv_response(rows, filename: str) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse((writer.writerow(row) for row in rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@login_required
@permission_required("activations.view_syncrun", raise_exception=True)
def reconciliation(request):
    days = _days(request)
    since = reconciliation_since(days)
    context = {
        "days": days,
        "since": since,
        "destinations": reconciliation_by_destination(since),
        "runs": with_delta(reconciliation_runs(since)[:RECENT_RUNS]),
        "recent_limit": RECENT_RUNS,
    }
    return render(request, "activations/reconciliation.html", context)


@login_required
@permission_required("activations.view_syncrun", raise_exception=True)
def reconciliation_csv(request):
    """One row per real run; `?records=<run id>`: one row per record of that run (no personal data)."""
    run_id = request.GET.get("records", "")
    if run_id:
        if not request.user.has_perm("activations.view_syncrecord"):
            raise PermissionDenied
        run = get_object_or_404(SyncRun, pk=int(run_id) if run_id.isdigit() else 0)
        audit_record(
            actor=actor_of(request),
            action="export.reconciliation_csv",
            target=run,
            summary=f"Exported the records of sync run {run.pk} as CSV",
            run_id=run.pk,
        )
        return _csv_response(record_csv_rows(run), f"reconciliation-run-{run.pk}-records.csv")
    days = _days(request)
    audit_record(
        actor=actor_of(request),
        action="export.reconciliation_csv",
        summary=f"Exported reconciliation of the last {days} days as CSV",
        days=days,
    )
    return _csv_response(reconciliation_csv_rows(reconciliation_since(days)), "reconciliation.csv")


@login_required
@permission_required("activations.view_destination", raise_exception=True)
def runbook_page(request):
    return render(request, "activations/runbook.html", {"entries": runbook(), "generated_at": timezone.now()})


@login_required
@permission_required("activations.view_destination", raise_exception=True)
def runbook_download(request):
    text = render_to_string("activations/runbook.md", {"entries": runbook(), "generated_at": timezone.now()})
    response = HttpResponse(text, content_type="text/markdown; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="runbook.md"'
    return response

"""Sync pages: list, detail with runs, create and edit, run now / dry run, and one run's records."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.db.models import Max
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from activations.filtersets import SyncRecordFilter
from activations.forms import SyncForm
from activations.models import Sync, SyncRecord, SyncRun
from activations.selectors import SKIP_LABELS, dry_run_requests, labelled_counts, run_summary, with_delta
from activations.syncs import (
    SyncBusy,
    SyncNotReady,
    sync_problems,
    sync_run_resume_paused,
    sync_run_retry_failed,
    sync_run_start,
)

RECORDS_PER_PAGE = 50


def actor(request) -> str:
    return f"user:{request.user.get_username()}"


def _busy_message(request, error: SyncBusy) -> None:
    url = reverse("activations:run_detail", args=[error.run.pk])
    messages.error(
        request,
        format_html(
            'Run <a href="{}">#{}</a> of this sync is still {}: wait for it to finish.',
            url,
            error.run.pk,
            error.run.status,
        ),
    )


# -- syncs ------------------------------------------------------------------------------------------


@login_required
@permission_required("activations.view_sync", raise_exception=True)
def sync_list(request):
    syncs = list(Sync.objects.select_related("segment", "destination").order_by("name"))
    latest_ids = (
        SyncRun.objects.filter(is_dry_run=False, sync__in=syncs)
        .order_by()
        .values("sync_id")
        .annotate(last=Max("id"))
        .values_list("last", flat=True)
    )
    last_runs = {run.sync_id: run for run in with_delta(SyncRun.objects.filter(id__in=list(latest_ids)))}
    for sync in syncs:
        sync.last_run = last_runs.get(sync.pk)
    return render(request, "activations/sync_list.html", {"syncs": syncs})


@login_required
@permission_required("activations.view_sync", raise_exception=True)
def sync_detail(request, slug):
    sync = get_object_or_404(Sync.objects.select_related("segment", "destination", "owner"), slug=slug)
    runs = with_delta(sync.runs.select_related("segment_version").order_by("-created_at", "-id")[:50])
    for run in runs:
        run.skipped_labelled = labelled_counts(run.skipped_reasons, SKIP_LABELS)
    latest_real = next((run for run in runs if not run.is_dry_run), None)
    context = {
        "sync": sync,
        "problems": sync_problems(sync),
        "runs": runs,
        "latest_real": latest_real,
    }
    return render(request, "activations/sync_detail.html", context)


def _sync_form_page(request, form, sync=None, status=200):
    form.fields["destination"].widget.attrs.update(
        {
            "hx-get": request.path,
            "hx-trigger": "change",
            "hx-target": "#field-fields",
            "hx-select": "#field-fields",
            "hx-swap": "outerHTML",
        }
    )
    return render(request, "activations/sync_form.html", {"form": form, "sync": sync}, status=status)


@login_required
@permission_required("activations.add_sync", raise_exception=True)
def sync_new(request):
    if request.method == "POST":
        form = SyncForm(request.POST)
        if form.is_valid():
            sync = form.save(commit=False)
            sync.owner = sync.owner or request.user
            sync.save()
            messages.success(request, f"Sync {sync.name} created.")
            return redirect("activations:sync_detail", slug=sync.slug)
        return _sync_form_page(request, form, status=400)
    initial = {name: request.GET[name] for name in ("segment", "destination") if request.GET.get(name)}
    return _sync_form_page(request, SyncForm(initial=initial))


@login_required
@permission_required("activations.change_sync", raise_exception=True)
def sync_edit(request, slug):
    sync = get_object_or_404(Sync.objects.select_related("segment", "destination"), slug=slug)
    if request.method == "POST":
        form = SyncForm(request.POST, instance=sync)
        if form.is_valid():
            sync = form.save()
            messages.success(request, f"Sync {sync.name} saved.")
            return redirect("activations:sync_detail", slug=sync.slug)
        return _sync_form_page(request, form, Sync.objects.get(pk=sync.pk), status=400)
    initial = {"destination": request.GET["destination"]} if request.GET.get("destination") else {}
    return _sync_form_page(request, SyncForm(instance=sync, initial=initial), sync)


@login_required
@require_POST
@permission_required("activations.add_syncrun", raise_exception=True)
def sync_run_view(request, slug):
    sync = get_object_or_404(Sync.objects.select_related("segment", "destination"), slug=slug)
    dry_run = request.POST.get("dry_run") in ("1", "true", "on")
    try:
        run = sync_run_start(sync=sync, triggered_by=actor(request), dry_run=dry_run)
    except SyncBusy as error:
        _busy_message(request, error)
        return redirect("activations:sync_detail", slug=sync.slug)
    except SyncNotReady as error:
        messages.error(request, f"{sync.name} cannot run: {error}.")
        return redirect("activations:sync_detail", slug=sync.slug)
    kind = "Dry run" if dry_run else "Run"
    messages.success(request, f"{kind} #{run.pk} of {sync.name} started.")
    return redirect("activations:run_detail", pk=run.pk)


# -- runs -------------------------------------------------------------------------------------------


@login_required
@permission_required("activations.view_syncrun", raise_exception=True)
def run_detail(request, pk):
    run = get_object_or_404(
        SyncRun.objects.select_related("sync__segment", "sync__destination", "segment_version"), pk=pk
    )
    [run] = with_delta([run])
    context = {"run": run, "summary": run_summary(run), "can_see_records": False}
    if request.user.has_perm("activations.view_syncrecord"):
        records = SyncRecordFilter(request.GET or None, queryset=SyncRecord.objects.filter(run=run).order_by("id"))
        page = Paginator(records.qs, RECORDS_PER_PAGE).get_page(request.GET.get("page"))
        context.update(
            can_see_records=True,
            filter=records,
            page=page,
            requests=dry_run_requests(run) if run.is_dry_run else [],
            can_see_profiles=request.user.has_perm("profiles.view_profile"),
        )
    return render(request, "activations/run_detail.html", context)


@login_required
@require_POST
@permission_required("activations.add_syncrun", raise_exception=True)
def run_resume(request, pk):
    run = get_object_or_404(SyncRun.objects.select_related("sync__segment", "sync__destination"), pk=pk)
    try:
        new_run = sync_run_resume_paused(run=run, triggered_by=actor(request))
    except SyncBusy as error:
        _busy_message(request, error)
    except SyncNotReady as error:
        messages.error(request, f"Cannot run it anyway: {error}.")
    else:
        messages.success(request, f"Run #{new_run.pk} started, overriding the guards that paused run #{run.pk}.")
        return redirect("activations:run_detail", pk=new_run.pk)
    return redirect("activations:run_detail", pk=run.pk)


@login_required
@require_POST
@permission_required("activations.change_syncrecord", raise_exception=True)
def run_retry_failed(request, pk):
    run = get_object_or_404(SyncRun.objects.select_related("sync"), pk=pk)
    try:
        count = sync_run_retry_failed(run=run)
    except SyncNotReady as error:
        messages.error(request, f"Cannot replay: {error}.")
    else:
        if count:
            messages.success(request, f"{count} failed record(s) queued to be sent again.")
        else:
            messages.info(request, "No failed records to replay.")
    return redirect("activations:run_detail", pk=run.pk)

"""Privacy request pages: list (overdue highlighted), new request, detail with the step log,
extend, confirm receipt, retry, and the access archive download. Privacy officers only."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.http import FileResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from cdp_site.audit import actor_of
from consent.forms_requests import ExtendForm, PrivacyRequestFilter, PrivacyRequestForm
from consent.models import PrivacyRequest
from consent.requests import (
    ACCESS_STEPS,
    DELETION_STEPS,
    STEP_LABELS,
    RequestInvalid,
    access_archive_open,
    access_archive_path,
    privacy_request_confirm_receipt,
    privacy_request_create,
    privacy_request_extend,
    privacy_request_retry,
)

PER_PAGE = 50


def masked(value: str) -> str:
    """Enough to recognise an identifier on screen, not enough to read it over a shoulder."""
    if "@" in value:
        local, _, domain = value.partition("@")
        return f"{local[:1]}***@{domain}"
    if len(value) <= 4:
        return "***"
    return f"{value[:2]}***{value[-2:]}"


@login_required
@permission_required("consent.view_privacyrequest", raise_exception=True)
def request_list(request):
    filterset = PrivacyRequestFilter(
        request.GET or None, queryset=PrivacyRequest.objects.select_related("requested_by").order_by("-received_at")
    )
    page = Paginator(filterset.qs, PER_PAGE).get_page(request.GET.get("page"))
    context = {"filter": filterset, "page": page}
    if request.htmx and not request.htmx.boosted:
        return render(request, "consent/requests/_table.html", context)
    return render(request, "consent/requests/list.html", context)


@login_required
@permission_required("consent.add_privacyrequest", raise_exception=True)
def request_new(request):
    form = PrivacyRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            privacy_request = privacy_request_create(
                kind=form.cleaned_data["kind"],
                regulation=form.cleaned_data["regulation"],
                identifiers=form.cleaned_data["identifiers"],
                received_at=form.cleaned_data.get("received_at"),
                actor=actor_of(request),
                user=request.user,
            )
        except RequestInvalid as error:
            for message in error.errors:
                form.add_error(None, message)
        else:
            messages.success(request, f"{privacy_request} received; it runs in the background.")
            return redirect("privacy:request_detail", pk=privacy_request.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "consent/requests/new.html", {"form": form}, status=status)


@login_required
@permission_required("consent.view_privacyrequest", raise_exception=True)
def request_detail(request, pk):
    privacy_request = get_object_or_404(PrivacyRequest.objects.select_related("requested_by"), pk=pk)
    steps = list(privacy_request.steps.all())
    done = {step.name for step in steps if step.outcome in ("ok", "skipped")}
    planned = DELETION_STEPS if privacy_request.kind == PrivacyRequest.DELETION else ACCESS_STEPS
    for step in steps:
        step.label = STEP_LABELS.get(step.name, step.name)
        step.counts = {key: value for key, value in step.detail.items() if not isinstance(value, list | dict)}
        step.outcomes = step.detail.get("outcomes", [])
        step.residue = step.detail.get("residue", {})
    context = {
        "privacy_request": privacy_request,
        "subject": [
            {"type": item["type"], "value": masked(item["value"])} for item in privacy_request.subject_identifiers
        ],
        "steps": steps,
        "waiting": [
            {"name": name, "label": STEP_LABELS[name]}
            for name in planned
            if name not in done and privacy_request.status != PrivacyRequest.COMPLETED
        ],
        "extend_form": ExtendForm(),
        "has_archive": access_archive_path(privacy_request) is not None,
    }
    return render(request, "consent/requests/detail.html", context)


@login_required
@require_POST
@permission_required("consent.change_privacyrequest", raise_exception=True)
def request_extend(request, pk):
    privacy_request = get_object_or_404(PrivacyRequest, pk=pk)
    form = ExtendForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for message in errors:
                messages.error(request, message)
        return redirect("privacy:request_detail", pk=pk)
    try:
        privacy_request = privacy_request_extend(
            request=privacy_request,
            reason=form.cleaned_data["reason"],
            notified=form.cleaned_data["notified"],
            actor=actor_of(request),
        )
    except RequestInvalid as error:
        for message in error.errors:
            messages.error(request, message)
    else:
        messages.success(request, f"Deadline extended to {privacy_request.extended_until:%Y-%m-%d}.")
    return redirect("privacy:request_detail", pk=pk)


@login_required
@require_POST
@permission_required("consent.change_privacyrequest", raise_exception=True)
def request_confirm_receipt(request, pk):
    privacy_request = get_object_or_404(PrivacyRequest, pk=pk)
    try:
        privacy_request_confirm_receipt(request=privacy_request, actor=actor_of(request))
    except RequestInvalid as error:
        messages.error(request, str(error))
    else:
        messages.success(request, "Receipt confirmed.")
    return redirect("privacy:request_detail", pk=pk)


@login_required
@require_POST
@permission_required("consent.change_privacyrequest", raise_exception=True)
def request_retry(request, pk):
    privacy_request = get_object_or_404(PrivacyRequest, pk=pk)
    try:
        privacy_request_retry(request=privacy_request, actor=actor_of(request))
    except RequestInvalid as error:
        messages.error(request, str(error))
    else:
        messages.success(request, "Retrying from the step that failed.")
    return redirect("privacy:request_detail", pk=pk)


@login_required
@permission_required("consent.view_privacyrequest", raise_exception=True)
def request_archive(request, pk):
    privacy_request = get_object_or_404(PrivacyRequest, pk=pk, kind=PrivacyRequest.ACCESS)
    try:
        handle = access_archive_open(request=privacy_request, actor=actor_of(request))
    except RequestInvalid as error:
        messages.error(request, str(error))
        return redirect("privacy:request_detail", pk=pk)
    return FileResponse(handle, as_attachment=True, filename=f"access-request-{privacy_request.pk}.zip")

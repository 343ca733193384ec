"""Segment pages: list, one segment with its versions, diffs and rollback, new segments and versions."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from segments import domain
from segments.forms import SegmentForm, VersionForm
from segments.models import Segment
from segments.selectors import segment_growth, segment_list, segment_preview
from segments.services import SegmentDefinitionInvalid, segment_create, segment_rollback, segment_version_create


def _author(request) -> str:
    return f"user:{request.user.get_username()}"


def _definition_errors(form, error: SegmentDefinitionInvalid) -> None:
    for problem in error.errors:
        form.add_error("definition", f"{problem.path or 'definition'}: {problem.message}")


@login_required
@permission_required("segments.view_segment", raise_exception=True)
def segment_index(request):
    return render(request, "segments/segment_list.html", {"segments": segment_list().order_by("name")})


@login_required
@permission_required("segments.add_segment", raise_exception=True)
def segment_new(request):
    form = SegmentForm(request.POST or None, initial={"definition": {"all": [{"trait": "email", "op": "exists"}]}})
    if request.method == "POST" and form.is_valid():
        try:
            segment = segment_create(**form.cleaned_data, author=_author(request), owner=request.user)
        except SegmentDefinitionInvalid as error:
            _definition_errors(form, error)
        else:
            messages.success(request, f"Segment {segment.name} created and published (version 1).")
            return redirect("segments:segment_detail", slug=segment.slug)
    return render(request, "segments/segment_form.html", {"form": form})


@login_required
@permission_required("segments.view_segment", raise_exception=True)
def segment_detail(request, slug):
    segment = get_object_or_404(Segment.objects.select_related("published_version", "owner"), slug=slug)
    versions = list(segment.versions.order_by("-number"))
    by_number = {version.number: version for version in versions}
    diff = None
    older, newer = request.GET.get("from", ""), request.GET.get("to", "")
    if older.isdigit() and newer.isdigit() and int(older) in by_number and int(newer) in by_number:
        diff = domain.definition_diff(by_number[int(older)].definition, by_number[int(newer)].definition)
    form = VersionForm(
        initial={"definition": segment.published_version.definition if segment.published_version else {}}
    )
    preview = segment_preview(definition=segment.published_version.definition) if segment.published_version else None
    context = {
        "segment": segment,
        "versions": versions,
        "diff": diff,
        "form": form,
        "preview": preview,
        "growth": segment_growth(segment=segment),
    }
    return render(request, "segments/segment_detail.html", context)


@login_required
@require_POST
@permission_required("segments.add_segmentversion", raise_exception=True)
def segment_version_new(request, slug):
    segment = get_object_or_404(Segment, slug=slug)
    form = VersionForm(request.POST)
    if form.is_valid():
        try:
            version, created = segment_version_create(segment=segment, author=_author(request), **form.cleaned_data)
        except SegmentDefinitionInvalid as error:
            _definition_errors(form, error)
        else:
            if created:
                messages.success(request, f"Version {version.number} saved and published.")
            else:
                messages.info(request, f"Nothing changed: version {version.number} is the same definition.")
            return redirect("segments:segment_detail", slug=segment.slug)
    versions = list(segment.versions.order_by("-number"))
    context = {"segment": segment, "versions": versions, "diff": None, "form": form, "preview": None}
    return render(request, "segments/segment_detail.html", context, status=400)


@login_required
@require_POST
@permission_required("segments.change_segment", raise_exception=True)
def segment_rollback_view(request, slug, number):
    segment = get_object_or_404(Segment, slug=slug)
    try:
        version = segment_rollback(segment=segment, number=number, author=_author(request))
    except SegmentDefinitionInvalid as error:
        messages.error(request, f"Version {number} cannot be published again: {error}")
    except ValueError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Version {number} published again as version {version.number}.")
    return redirect("segments:segment_detail", slug=segment.slug)

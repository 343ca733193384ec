"""CSV import pages: upload, map the columns, then watch the import run."""

import uuid
from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django_q.tasks import async_task

from profiles.csv_import import MappingInvalid, csv_import_create, guess_target, read_header, target_choices
from profiles.models import CsvImport, Source


class UploadForm(forms.Form):
    source = forms.ModelChoiceField(queryset=Source.objects.filter(kind=Source.CSV, is_active=True))
    file = forms.FileField(help_text="UTF-8 CSV with a header row.")
    event_type = forms.CharField(initial="customer.imported", help_text="Canonical event type of every row.")
    timezone = forms.CharField(initial="UTC", help_text="For dates written without a timezone.")


def _upload_dir() -> Path:
    path = Path(settings.MEDIA_ROOT) / "imports"
    path.mkdir(parents=True, exist_ok=True)
    return path


@login_required
@permission_required("profiles.view_csvimport", raise_exception=True)
def csv_import_list(request):
    page = Paginator(CsvImport.objects.select_related("source").order_by("-id"), 25).get_page(request.GET.get("page"))
    return render(request, "profiles/csv/list.html", {"page": page})


@login_required
@permission_required("profiles.add_csvimport", raise_exception=True)
def csv_import_new(request):
    """Step 1 uploads (streamed to disk in chunks); step 2 maps the columns and starts."""
    if request.method == "POST" and "stored_file" in request.POST:
        return _start(request)
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        stored = _upload_dir() / f"{uuid.uuid4().hex}.csv"
        with open(stored, "wb") as handle:
            for block in form.cleaned_data["file"].chunks():
                handle.write(block)
        try:
            header = read_header(stored)
        except MappingInvalid as error:
            stored.unlink(missing_ok=True)
            form.add_error("file", error.errors[0])
            return render(request, "profiles/csv/new.html", {"form": form})
        context = {
            "stored_file": stored.name,
            "file_name": form.cleaned_data["file"].name,
            "source": form.cleaned_data["source"],
            "event_type": form.cleaned_data["event_type"],
            "timezone": form.cleaned_data["timezone"],
            "columns": [(i, column, guess_target(column)) for i, column in enumerate(header)],
            "choices": target_choices(),
        }
        return render(request, "profiles/csv/mapping.html", context)
    return render(request, "profiles/csv/new.html", {"form": form})


def _start(request):
    stored = _upload_dir() / Path(request.POST["stored_file"]).name  # never a path the client chose
    source = get_object_or_404(Source, pk=request.POST.get("source"), kind=Source.CSV)
    header = read_header(stored) if stored.is_file() else []
    columns = {column: request.POST.get(f"target_{i}", "ignore") for i, column in enumerate(header)}
    spec = {"columns": columns, "event_type": request.POST.get("event_type"), "timezone": request.POST.get("timezone")}
    try:
        csv_import = csv_import_create(
            source=source,
            path=stored,
            file_name=request.POST.get("file_name", stored.name),
            spec=spec,
            user=request.user,
        )
    except MappingInvalid as error:
        context = {
            "errors": error.errors,
            "stored_file": stored.name,
            "file_name": request.POST.get("file_name"),
            "source": source,
            "event_type": spec["event_type"],
            "timezone": spec["timezone"],
            "columns": [(i, column, columns[column]) for i, column in enumerate(header)],
            "choices": target_choices(),
        }
        return render(request, "profiles/csv/mapping.html", context, status=400)
    transaction.on_commit(
        lambda: async_task(
            "profiles.tasks_csv.csv_import_run_task",
            csv_import_id=csv_import.pk,
            q_options={"task_name": f"csv_import_{csv_import.pk}"},
        )
    )
    return redirect("profiles:csv_import_detail", pk=csv_import.pk)


@login_required
@permission_required("profiles.view_csvimport", raise_exception=True)
def csv_import_detail(request, pk):
    csv_import = get_object_or_404(CsvImport.objects.select_related("source"), pk=pk)
    return render(request, "profiles/csv/detail.html", {"csv_import": csv_import})


@login_required
@permission_required("profiles.view_csvimport", raise_exception=True)
def csv_import_progress(request, pk):
    csv_import = get_object_or_404(CsvImport, pk=pk)
    return render(request, "profiles/csv/_progress.html", {"csv_import": csv_import})

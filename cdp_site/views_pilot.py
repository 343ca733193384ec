"""Pilot gates and handoff pack pages. Thin views over cdp_site.pilot_gates and cdp_site.handoff."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from cdp_site.audit import actor_of, audit_record
from cdp_site.forms_pilot import PilotSettingsForm, PilotSignoffForm
from cdp_site.handoff import FILES, handoff_build, handoff_summary
from cdp_site.pilot_gates import (
    latest_signoffs,
    pilot_gates_evaluate,
    pilot_settings,
    pilot_settings_update,
    pilot_signoff_record,
    signoff_history,
)

GATES_PERMISSION = "cdp_site.view_pilotsignoff"
SIGNOFF_PERMISSION = "cdp_site.add_pilotsignoff"
SETTINGS_PERMISSION = "cdp_site.change_pilotsettings"
HANDOFF_PERMISSIONS = ("profiles.view_source", "activations.view_destination")


def _gates_page(request, *, signoff_form=None, settings_form=None, status=200):
    settings = pilot_settings()
    can_sign = request.user.has_perm(SIGNOFF_PERMISSION)
    can_configure = request.user.has_perm(SETTINGS_PERMISSION)
    if can_sign and signoff_form is None:
        signoff_form = PilotSignoffForm()
    if can_configure and settings_form is None:
        settings_form = PilotSettingsForm.for_settings(settings)
    context = {
        "report": pilot_gates_evaluate(),
        "pilot_settings": settings,
        "signoffs": latest_signoffs(),
        "history": signoff_history(),
        "signoff_form": signoff_form if can_sign else None,
        "settings_form": settings_form if can_configure else None,
        "can_download": request.user.has_perms(HANDOFF_PERMISSIONS),
    }
    return render(request, "cdp_site/pilot/gates.html", context, status=status)


@login_required
@require_GET
@permission_required(GATES_PERMISSION, raise_exception=True)
def gates(request):
    return _gates_page(request)


@login_required
@require_POST
@permission_required((GATES_PERMISSION, SIGNOFF_PERMISSION), raise_exception=True)
def signoff_new(request):
    form = PilotSignoffForm(request.POST)
    if not form.is_valid():
        return _gates_page(request, signoff_form=form, status=400)
    signoff = pilot_signoff_record(
        gate=form.cleaned_data["gate"],
        decision=form.cleaned_data["decision"],
        document_url=form.cleaned_data["document_url"],
        note=form.cleaned_data["note"].strip(),
        actor=actor_of(request),
    )
    messages.success(request, f"{signoff.get_gate_display()}: {signoff.get_decision_display().lower()} recorded.")
    return redirect("pilot:gates")


@login_required
@require_POST
@permission_required((GATES_PERMISSION, SETTINGS_PERMISSION), raise_exception=True)
def settings_edit(request):
    form = PilotSettingsForm(request.POST)
    if not form.is_valid():
        return _gates_page(request, settings_form=form, status=400)
    pilot_settings_update(**form.values(), actor=actor_of(request))
    messages.success(request, "Pilot thresholds saved.")
    return redirect("pilot:gates")


@login_required
@require_GET
@permission_required(HANDOFF_PERMISSIONS, raise_exception=True)
def handoff(request):
    return render(request, "cdp_site/pilot/handoff.html", {"summary": handoff_summary(), "files": FILES})


def handoff_response(request) -> HttpResponse:
    """The ZIP as an attachment, with an `export.handoff_pack` audit entry (the page and the API share it)."""
    pack = handoff_build()
    audit_record(
        actor=actor_of(request),
        action="export.handoff_pack",
        summary=f"Downloaded the handoff pack {pack.filename}",
        files=list(FILES),
        rows=pack.rows,
    )
    response = HttpResponse(pack.content, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{pack.filename}"'
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_GET
@permission_required(HANDOFF_PERMISSIONS, raise_exception=True)
def handoff_download(request):
    return handoff_response(request)

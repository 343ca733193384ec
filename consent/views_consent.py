"""Consent pages: record consent for a person (staff channel) and withdrawal propagation latency."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.shortcuts import redirect, render

from cdp_site.audit import actor_of
from cdp_site.form_errors import add_errors_to_form
from consent.domain import PURPOSES
from consent.forms_consent import ConsentRecordForm
from consent.propagation import (
    LATENCY_DAYS,
    failures_open,
    latency_since,
    propagation_summary,
    recent_withdrawals,
)
from consent.recording import STAFF, ConsentInvalid, consent_record
from profiles.models import Profile, Source
from profiles.selectors import profile_resolve

PURPOSE_LABELS = dict(PURPOSES)


@login_required
@permission_required(["consent.add_consentrecord", "profiles.view_profile"], raise_exception=True)
def consent_record_new(request, pk):
    profile = profile_resolve(profile_id=pk)
    if profile is None or profile.status == Profile.DELETED:
        return render(request, "profiles/not_found.html", {"pk": pk}, status=404)
    if profile.pk != pk:
        return redirect("consent:consent_record_new", pk=profile.pk)
    form = ConsentRecordForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        note = form.cleaned_data["note"].strip()
        try:
            record = consent_record(
                profile=profile,
                purpose=form.cleaned_data["purpose"],
                is_granted=form.is_granted,
                channel=STAFF,
                actor=actor_of(request),
                scope=form.cleaned_data["scope"],
                evidence={"note": note} if note else {},
            )
        except ConsentInvalid as error:
            add_errors_to_form(form, error.errors)
        else:
            label = PURPOSE_LABELS[record.purpose]
            if record.is_granted:
                messages.success(request, f"{label}: consent granted (record #{record.pk}).")
            else:
                messages.success(
                    request,
                    f"{label}: consent withdrawn (record #{record.pk}). Destinations that need it are being "
                    "told now; see Consent propagation.",
                )
            return redirect("profiles:profile_detail", pk=profile.pk)
    sources = {source.pk: source for source in Source.objects.all()}
    consent = [
        {"purpose": PURPOSE_LABELS.get(purpose, purpose), **entry, "source": sources.get(entry.get("source_id"))}
        for purpose, entry in sorted((profile.consent or {}).items())
    ]
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "consent/consent/record_form.html",
        {"profile": profile, "form": form, "consent": consent},
        status=status,
    )


def _days(request) -> int:
    text = request.GET.get("days", "")
    return min(max(int(text), 1), 366) if text.isdigit() else LATENCY_DAYS


@login_required
@permission_required("activations.view_suppressionapplied", raise_exception=True)
def propagation(request):
    days = _days(request)
    since = latency_since(days)
    context = {
        "days": days,
        "summary": propagation_summary(since=since),
        "failures": failures_open(),
        "withdrawals": recent_withdrawals(since=since),
        "can_see_profiles": request.user.has_perm("profiles.view_profile"),
    }
    if request.htmx and not request.htmx.boosted:
        return render(request, "consent/consent/_propagation_results.html", context)
    return render(request, "consent/consent/propagation.html", context)

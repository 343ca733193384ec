"""Back-office pages: thin views over selectors and services."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.db.models import Count, Max, Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from cdp_site import pii
from cdp_site.audit import actor_of, audit_record
from consent.models import ConsentRecord
from consent.sealing import profiles_unseal
from identity.models import Merge
from profiles.filtersets import RawEventFilter
from profiles.forms import ProfileSearchForm, SourceForm
from profiles.models import Event, Profile, RawEvent, SchemaDrift, Source
from profiles.processing import raw_events_replay
from profiles.selectors import profile_resolve, profile_search
from profiles.sources import source_create, source_retire_old_secrets, source_rotate_credentials


def _page(request, queryset, per_page=50):
    return Paginator(queryset, per_page).get_page(request.GET.get("page"))


def _fragment_or_page(request, page_template, fragment_template, context):
    if request.htmx and not request.htmx.boosted:
        return render(request, fragment_template, context)
    return render(request, page_template, context)


# -- profiles ---------------------------------------------------------------------------------


@login_required
@permission_required("profiles.view_profile", raise_exception=True)
def profile_list(request):
    form = ProfileSearchForm(request.GET or None)
    results, error = Profile.objects.none(), None
    if form.is_valid():
        try:
            results = profile_search(query=form.cleaned_data["q"])
        except ValueError as problem:
            error = str(problem)
            form.add_error("q", error)
    else:
        results = profile_search(query="")
    page = _page(request, results)
    profiles_unseal(page.object_list)  # names are sealed traits: one vault query for the page
    context = {"form": form, "page": page, "error": error}
    return _fragment_or_page(request, "profiles/profile_list.html", "profiles/_profile_results.html", context)


@login_required
@permission_required("profiles.view_profile", raise_exception=True)
def profile_detail(request, pk):
    profile = profile_resolve(profile_id=pk)
    if profile is None:
        return render(request, "profiles/not_found.html", {"pk": pk}, status=404)
    if profile.pk != pk:
        return redirect("profiles:profile_detail", pk=profile.pk)
    events = Event.objects.filter(profile=profile).select_related("source").order_by("-occurred_at", "-id")
    page = _page(request, events, per_page=25)
    if request.htmx and not request.htmx.boosted:
        return render(request, "profiles/_timeline.html", {"profile": profile, "page": page})
    sources = {source.pk: source for source in Source.objects.all()}
    traits = [
        {
            "key": key,
            "value": value,
            "source": sources.get((profile.trait_provenance.get(key) or {}).get("source_id")),
            "observed_at": (profile.trait_provenance.get(key) or {}).get("observed_at"),
            "is_verified": (profile.trait_provenance.get(key) or {}).get("is_verified", False),
        }
        for key, value in sorted(profile.clear_traits.items())
    ]
    consent = [
        {"purpose": purpose, **entry, "source": sources.get(entry.get("source_id"))}
        for purpose, entry in sorted(profile.consent.items())
    ]
    context = {
        "profile": profile,
        "identifiers": profile.identifiers.select_related("identifier_type", "source").order_by(
            "-identifier_type__priority", "first_seen_at"
        ),
        "traits": traits,
        "merges": Merge.objects.filter(Q(survivor=profile) | Q(absorbed=profile)).order_by("-created_at")[:50],
        "consent": consent,
        "consent_records": ConsentRecord.objects.filter(profile=profile).select_related("source")[:20],
        "page": page,
    }
    return render(request, "profiles/profile_detail.html", context)


@login_required
@require_POST
@permission_required(("profiles.view_profile", pii.REVEAL_PERMISSION), raise_exception=True)
def profile_reveal(request, pk):
    """One profile's personal data in cleartext, for the page that asked (an htmx swap) or on a page
    of its own; each reveal is logged with the fields shown, never their values."""
    profile = profile_resolve(profile_id=pk)
    if profile is None or profile.status != Profile.ACTIVE:
        raise Http404(f"No profile {pk}.")
    rows = pii.profile_pii_reveal(profile=profile, actor=actor_of(request), where=request.POST.get("where", ""))
    back = request.POST.get("next") or ""
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        back = reverse("profiles:profile_detail", args=[profile.pk])
    context = {"profile": profile, "revealed": rows, "back": back}
    if request.htmx:
        return render(request, "profiles/_profile_pii.html", context)
    return render(request, "profiles/profile_reveal.html", context)


# -- sources ----------------------------------------------------------------------------------


def _ingest_path(source: Source) -> str:
    if source.kind == Source.TRACKING:
        return reverse("tracking_call", kwargs={"call_type": "batch"})
    if source.is_webhook:
        return f"/webhooks/{source.slug}/"
    return reverse("profiles:source_detail", kwargs={"slug": source.slug})


@login_required
@permission_required("profiles.view_source", raise_exception=True)
def source_list(request):
    since = timezone.now() - timezone.timedelta(hours=24)
    sources = Source.objects.select_related("owner").annotate(
        events_24h=Count("raw_events", filter=Q(raw_events__received_at__gte=since)),
        quarantined=Count("raw_events", filter=Q(raw_events__status=RawEvent.QUARANTINED)),
        failed=Count("raw_events", filter=Q(raw_events__status=RawEvent.FAILED)),
        pending=Count("raw_events", filter=Q(raw_events__status=RawEvent.PENDING)),
        last_event_at=Max("raw_events__received_at"),
    )
    now = timezone.now()
    rows = [
        {
            "source": source,
            "is_stale": source.last_event_at is None
            or now - source.last_event_at > timezone.timedelta(minutes=source.freshness_sla_minutes),
        }
        for source in sources
    ]
    return render(request, "profiles/source_list.html", {"rows": rows})


@login_required
@permission_required("profiles.view_source", raise_exception=True)
def source_detail(request, slug, credentials=None):
    source = get_object_or_404(Source.objects.select_related("owner"), slug=slug)
    counts = dict(source.raw_events.values_list("status").annotate(n=Count("id")))
    context = {
        "source": source,
        "counts": {status: counts.get(status, 0) for status, _ in RawEvent.STATUSES},
        "recent": source.raw_events.order_by("-received_at", "-id")[:25],
        "drift": SchemaDrift.objects.filter(source=source).order_by("-occurrences")[:25],
        "ingest_path": _ingest_path(source),
        "credentials": credentials,
    }
    return render(request, "profiles/source_detail.html", context)


@login_required
@permission_required("profiles.add_source", raise_exception=True)
def source_new(request):
    form = SourceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        secret = data.pop("signing_secret") or None
        source, credentials = source_create(**data, signing_secret=secret)
        messages.success(request, f"Source {source.name} created. Copy its credentials now: they are shown once.")
        # Rendered on this response only: never stored in cleartext, never shown again.
        return source_detail(request, source.slug, credentials=credentials)
    return render(request, "profiles/source_form.html", {"form": form})


@login_required
@require_POST
@permission_required("profiles.change_source", raise_exception=True)
def source_rotate(request, slug):
    source = get_object_or_404(Source, slug=slug)
    credentials = source_rotate_credentials(source=source, signing_secret=request.POST.get("signing_secret") or None)
    source.refresh_from_db()
    messages.success(request, "Credentials rotated. Copy the new one now: it is shown once.")
    return source_detail(request, source.slug, credentials=credentials)


@login_required
@require_POST
@permission_required("profiles.change_source", raise_exception=True)
def source_retire_secrets(request, slug):
    source = get_object_or_404(Source, slug=slug)
    source_retire_old_secrets(source=source)
    messages.success(request, "Older signing secrets retired; only the newest is accepted now.")
    return redirect("profiles:source_detail", slug=slug)


# -- raw events -------------------------------------------------------------------------------


@login_required
@permission_required("profiles.view_rawevent", raise_exception=True)
def raw_event_list(request):
    filterset = RawEventFilter(request.GET or None, queryset=RawEvent.objects.select_related("source").order_by("-id"))
    context = {"filter": filterset, "page": _page(request, filterset.qs)}
    return _fragment_or_page(request, "profiles/raw_event_list.html", "profiles/_raw_event_rows.html", context)


@login_required
@permission_required("profiles.view_rawevent", raise_exception=True)
def raw_event_detail(request, pk):
    raw = get_object_or_404(RawEvent.objects.select_related("source"), pk=pk)
    events = raw.events.select_related("profile").order_by("sequence")
    if pii.can_see_pii(request.user):
        # The payload as received holds personal data: reading it is logged like a reveal.
        audit_record(actor=actor_of(request), action="raw_event.view", target=raw, summary=f"Read raw event {raw.pk}")
        payload = raw.payload
    else:
        payload = pii.mask_json(raw.payload)
    return render(request, "profiles/raw_event_detail.html", {"raw": raw, "events": events, "payload": payload})


@login_required
@require_POST
@permission_required("profiles.change_rawevent", raise_exception=True)
def raw_event_replay(request):
    ids = [int(value) for value in request.POST.getlist("ids") if value.isdigit()]
    replayed = raw_events_replay(raw_event_ids=ids)
    still = RawEvent.objects.filter(id__in=ids).exclude(status=RawEvent.PROCESSED).count()
    messages.success(request, f"Replayed {replayed} raw events; {replayed - still} processed, {still} still not.")
    return redirect(request.POST.get("next") or reverse("profiles:raw_event_list"))


@login_required
@permission_required("profiles.view_schemadrift", raise_exception=True)
def schema_drift(request):
    rows = SchemaDrift.objects.select_related("source").order_by("-occurrences", "source__name")
    return render(request, "profiles/schema_drift.html", {"page": _page(request, rows)})

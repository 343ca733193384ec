"""Merge review pages: the queue of pending and blocked links, one pair side by side, decisions
(approve, reject, in bulk) and unmerge. Thin views over identity.services."""

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ObjectDoesNotExist
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from consent.sealing import profiles_unseal
from identity import services
from identity.filtersets import REVIEWABLE, ReviewLinkFilter
from identity.forms_review import ReviewDecisionForm, UnmergeForm
from identity.models import Identifier, IdentityLink, Merge
from profiles.models import Event

PAGE_SIZE = 50
IDENTIFIERS_PER_END = 4  # shown in a queue row beside the identifier the link joins
RECENT_EVENTS = timedelta(days=30)


def actor_of(request) -> str:
    return f"user:{request.user.get_username()}"


def links_decide(*, link_ids: list[int], decision: str, actor: str, note: str) -> tuple[list[int], int, list[str]]:
    """Approve or reject each link in its own transaction, so one refusal does not undo the others.
    Returns the links decided, the merges made and one message per refusal. Shared with the admin."""
    decide = services.link_approve if decision == ReviewDecisionForm.APPROVE else services.link_reject
    decided, merges, refusals = [], 0, []
    for link_id in link_ids:
        try:
            result = decide(link_id=link_id, actor=actor, note=note)
        except services.IdentityActionError as problem:
            refusals.append(f"Link {link_id}: {problem}.")
            continue
        except ObjectDoesNotExist:
            refusals.append(f"Link {link_id}: no such link.")
            continue
        decided.append(link_id)
        merges += isinstance(result, Merge)
    return decided, merges, refusals


def _identifiers_of_profile():
    return Identifier.objects.select_related("identifier_type").order_by("-identifier_type__priority", "id")


def _links():
    return IdentityLink.objects.select_related(
        "from_identifier__identifier_type",
        "from_identifier__source",
        "from_identifier__profile",
        "to_identifier__identifier_type",
        "to_identifier__source",
        "to_identifier__profile",
    )


def _back(request, default: str) -> str:
    """Where to go after a write: the page that asked (a same-site `next`), else `default`."""
    target = request.POST.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return default


def _go(request, url: str):
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _refuse(request, problems: list[str], back: str):
    """A write that could not be done: for htmx a 400 fragment, else messages on the page that asked."""
    if request.htmx:
        return render(request, "identity/_review_errors.html", {"problems": problems}, status=400)
    for problem in problems:
        messages.error(request, problem)
    return redirect(back)


def _form_problems(form) -> list[str]:
    return [str(error) for errors in form.errors.values() for error in errors]


@login_required
@permission_required("identity.view_identitylink", raise_exception=True)
def review_queue(request):
    queryset = _links().prefetch_related(
        *(
            Prefetch(
                f"{end}__profile__identifiers",
                _identifiers_of_profile()[:IDENTIFIERS_PER_END],
                to_attr="first_identifiers",
            )
            for end in ("from_identifier", "to_identifier")
        )
    )
    filterset = ReviewLinkFilter(request.GET, queryset=queryset.order_by("created_at", "id"))
    page = Paginator(filterset.qs, PAGE_SIZE).get_page(request.GET.get("page"))
    # Names are sealed traits: decrypt both ends' of the whole page in one vault query.
    profiles_unseal(end.profile for link in page.object_list for end in (link.from_identifier, link.to_identifier))
    context = {"filter": filterset, "page": page}
    if request.htmx and not request.htmx.boosted:
        return render(request, "identity/_review_rows.html", context)
    return render(request, "identity/review_queue.html", context)


@login_required
@permission_required("identity.view_identitylink", raise_exception=True)
def review_link(request, pk):
    link = get_object_or_404(
        _links().prefetch_related(Prefetch("merges", Merge.objects.select_related("unmerge").order_by("-created_at"))),
        pk=pk,
    )
    ends = (link.from_identifier, link.to_identifier)
    profile_ids = {end.profile_id for end in ends}
    identifiers = {profile_id: [] for profile_id in profile_ids}
    for identifier in _identifiers_of_profile().select_related("source").filter(profile_id__in=profile_ids):
        identifiers[identifier.profile_id].append(identifier)
    events = {
        row["profile_id"]: row
        for row in Event.objects.filter(profile_id__in=profile_ids)
        .values("profile_id")
        .annotate(total=Count("id"), recent=Count("id", filter=Q(occurred_at__gte=timezone.now() - RECENT_EVENTS)))
    }
    sides = [
        {
            "label": label,
            "end": end,
            "profile": end.profile,
            "identifiers": identifiers[end.profile_id],
            "traits": sorted(end.profile.clear_traits.items()),
            "events": events.get(end.profile_id, {"total": 0, "recent": 0}),
        }
        for label, end in (("Left", link.from_identifier), ("Right", link.to_identifier))
    ]
    evidence = link.evidence or {}
    context = {
        "link": link,
        "sides": sides,
        "same_profile": len(profile_ids) == 1,
        "is_reviewable": link.status in REVIEWABLE,
        "fields": sorted((evidence.get("fields") or {}).items()),
        "evidence": sorted((key, value) for key, value in evidence.items() if key != "fields"),
        "merges": list(link.merges.all()),
        "recent_days": RECENT_EVENTS.days,
    }
    return render(request, "identity/review_link.html", context)


@login_required
@require_POST
@permission_required("identity.change_identitylink", raise_exception=True)
def review_decide(request):
    back = _back(request, reverse("identity:review_queue"))
    form = ReviewDecisionForm(request.POST)
    if not form.is_valid():
        return _refuse(request, _form_problems(form), back)
    decision = form.cleaned_data["decision"]
    decided, merges, refusals = links_decide(
        link_ids=form.cleaned_data["links"], decision=decision, actor=actor_of(request), note=form.cleaned_data["note"]
    )
    if not decided:
        return _refuse(request, refusals, back)
    for refusal in refusals:
        messages.error(request, refusal)
    count = f"{len(decided)} link{'s' if len(decided) != 1 else ''}"
    if decision == ReviewDecisionForm.APPROVE:
        messages.success(request, f"Approved {count}; {merges} merge{'s' if merges != 1 else ''} made.")
    else:
        messages.success(request, f"Rejected {count}; the profiles stay apart.")
    return _go(request, back)


@login_required
@require_POST
@permission_required("identity.add_unmerge", raise_exception=True)
def merge_unmerge(request, pk):
    back = _back(request, reverse("identity:review_queue"))
    form = UnmergeForm(request.POST)
    if not form.is_valid():
        return _refuse(request, _form_problems(form), back)
    try:
        unmerge = services.merge_unmerge(merge_id=pk, actor=actor_of(request), reason=form.cleaned_data["reason"])
    except services.IdentityActionError as problem:
        return _refuse(request, [f"Unmerge refused: {problem}."], back)
    messages.success(
        request, f"Merge #{pk} undone: profile #{unmerge.restored_id} restored beside #{unmerge.remaining_id}."
    )
    return _go(request, reverse("profiles:profile_detail", args=[unmerge.restored_id]))

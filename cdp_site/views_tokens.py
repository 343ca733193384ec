"""One's own REST API tokens: the list with the issue form, issue, revoke. Thin views over cdp_site.api_tokens.

Only a log-in is needed: a token never reaches more than its user's roles already do.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from cdp_site.api_tokens import (
    MAX_ACTIVE_TOKENS_PER_USER,
    ApiTokenRefused,
    api_token_active_count,
    api_token_issue_own,
    api_token_list_own,
    api_token_revoke_own,
)
from cdp_site.audit import actor_of
from cdp_site.form_errors import add_errors_to_form
from cdp_site.forms_tokens import ApiTokenIssueForm
from cdp_site.models import ApiToken

PAGE_SIZE = 25


def _list_page(request, *, form=None, issued=None, status=200):
    page = Paginator(api_token_list_own(user=request.user), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "form": form or ApiTokenIssueForm(),
        "issued": issued,
        "active_count": api_token_active_count(user=request.user),
        "max_active": MAX_ACTIVE_TOKENS_PER_USER,
    }
    return render(request, "cdp_site/tokens/list.html", context, status=status)


@login_required
@require_GET
def token_list(request):
    return _list_page(request)


@login_required
@require_POST
def token_issue(request):
    form = ApiTokenIssueForm(request.POST)
    if form.is_valid():
        try:
            row, token = api_token_issue_own(
                user=request.user,
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                expires_in_days=form.expiry_days(),
                actor=actor_of(request),
            )
        except ApiTokenRefused as error:
            add_errors_to_form(form, error.errors)
        else:
            # The cleartext exists only in this response: not in a redirect, the session or a message.
            response = _list_page(request, issued={"row": row, "token": token})
            response["Cache-Control"] = "no-store"
            return response
    return _list_page(request, form=form, status=400)


@login_required
@require_POST
def token_revoke(request, pk):
    try:
        row, revoked_now = api_token_revoke_own(user=request.user, pk=pk, actor=actor_of(request))
    except ApiToken.DoesNotExist:
        raise Http404("No such token.") from None  # someone else's token looks like a missing one
    if revoked_now:
        messages.success(request, f"Token {row.token_prefix}… revoked: it no longer authenticates.")
    else:
        messages.info(request, f"Token {row.token_prefix}… was already revoked.")
    return redirect("tokens:list")

"""A signed-in user's own REST API tokens: list, issue (a capped number of active ones) and revoke.

Issuing and revoking are audited with the token's prefix (`cdp_xxxxxx`), never the token or its hash.
A token never reaches more than its user's roles do, so any signed-in user may manage their own.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Case, CharField, Q, QuerySet, Value, When
from django.utils import timezone

from cdp_site.audit import audit_record
from cdp_site.models import API_TOKEN_SCOPES, ApiToken

MAX_ACTIVE_TOKENS_PER_USER = 20
EXPIRY_DAYS_OPTIONS = (7, 30, 90, 365)  # or None: never expires
NAME_MAX_LENGTH = ApiToken._meta.get_field("name").max_length

ACTIVE, EXPIRED, REVOKED = "active", "expired", "revoked"


class ApiTokenRefused(Exception):
    """The token cannot be issued: `errors` is {field: [messages]} ("__all__" for the whole form)."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{name}: {' '.join(messages)}" for name, messages in errors.items()))
        self.errors = errors


def _revoked() -> Q:
    return Q(revoked_at__isnull=False) | Q(is_active=False)


def api_token_list_own(*, user, now=None) -> QuerySet[ApiToken]:
    """The user's tokens, newest first, each with `status`: active, expired or revoked."""
    now = now or timezone.now()
    return (
        ApiToken.objects.filter(user=user)
        .annotate(
            status=Case(
                When(_revoked(), then=Value(REVOKED)),
                When(expires_at__lte=now, then=Value(EXPIRED)),
                default=Value(ACTIVE),
                output_field=CharField(),
            )
        )
        .order_by("-created_at", "-id")
    )


def api_token_active_count(*, user, now=None) -> int:
    """Tokens of the user that still authenticate: not revoked and not expired."""
    now = now or timezone.now()
    active = ApiToken.objects.filter(user=user).exclude(_revoked())
    return active.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now)).count()


def api_token_validate(*, name: str, scopes: list[str], expires_in_days: int | None) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if not name:
        errors["name"] = ["Give the token a name that says where it is used."]
    elif len(name) > NAME_MAX_LENGTH:
        errors["name"] = [f"Keep the name to {NAME_MAX_LENGTH} characters."]
    if not scopes or set(scopes) - set(API_TOKEN_SCOPES):
        errors["scopes"] = [f"Choose at least one of: {', '.join(sorted(API_TOKEN_SCOPES))}."]
    if expires_in_days is not None and expires_in_days not in EXPIRY_DAYS_OPTIONS:
        days = ", ".join(str(days) for days in EXPIRY_DAYS_OPTIONS)
        errors["expires_in_days"] = [f"Choose {days} days, or never."]
    return errors


@transaction.atomic
def api_token_issue_own(
    *, user, name: str, scopes: list[str], expires_in_days: int | None, actor: str
) -> tuple[ApiToken, str]:
    """A new token for `user`: (row, cleartext token). The cleartext is not stored: show it once.

    Refuses (ApiTokenRefused) bad input and a user who already holds MAX_ACTIVE_TOKENS_PER_USER
    active tokens. The user's row is locked, so two requests at once cannot both pass the cap."""
    name = (name or "").strip()
    errors = api_token_validate(name=name, scopes=scopes, expires_in_days=expires_in_days)
    if errors:
        raise ApiTokenRefused(errors)
    get_user_model().objects.select_for_update().only("pk").get(pk=user.pk)
    now = timezone.now()
    if api_token_active_count(user=user, now=now) >= MAX_ACTIVE_TOKENS_PER_USER:
        raise ApiTokenRefused(
            {
                "__all__": [
                    f"You already have {MAX_ACTIVE_TOKENS_PER_USER} active tokens, the most one person may hold. "
                    "Revoke one you no longer use, then issue a new one."
                ]
            }
        )
    expires_at = now + timedelta(days=expires_in_days) if expires_in_days is not None else None
    row, token = ApiToken.issue(user=user, name=name, scopes=scopes, expires_at=expires_at)
    audit_record(
        actor=actor,
        action="api_token.issue",
        target=row,
        summary=f"Issued API token {row.token_prefix}… ({', '.join(row.scopes)})",
        token_prefix=row.token_prefix,
        scopes=row.scopes,
        expires_in_days=expires_in_days,
    )
    return row, token


@transaction.atomic
def api_token_revoke_own(*, user, pk: int, actor: str) -> tuple[ApiToken, bool]:
    """Revoke one of the user's own tokens: (row, whether it was revoked now). The row stays.

    Raises ApiToken.DoesNotExist for a token of someone else, so callers answer as for a missing
    one. Revoking a revoked token changes nothing and writes no audit entry."""
    row = ApiToken.objects.select_for_update().get(user=user, pk=pk)
    if row.revoked_at is not None:
        return row, False
    row.revoked_at = timezone.now()
    row.save(update_fields=["revoked_at"])
    audit_record(
        actor=actor,
        action="api_token.revoke",
        target=row,
        summary=f"Revoked API token {row.token_prefix}…",
        token_prefix=row.token_prefix,
    )
    return row, True

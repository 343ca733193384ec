import json
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from cdp_site.models import API_TOKEN_SCOPES, ApiToken, api_token_all_scopes


class Command(BaseCommand):
    help = (
        "Issue a REST API token for a user and print it as JSON (shown once; stored hashed). "
        "Scopes: " + "; ".join(f"{name}: {meaning}" for name, meaning in API_TOKEN_SCOPES.items()) + "."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="What the token is for.")
        parser.add_argument(
            "--scopes",
            default=",".join(api_token_all_scopes()),
            help="Comma separated, any of: read, write, metrics (default: all).",
        )
        parser.add_argument("--expires-in-days", type=int, default=None, help="Default: never expires.")

    def handle(self, *args, username, name, scopes, expires_in_days, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        wanted = sorted({scope.strip() for scope in scopes.split(",") if scope.strip()})
        unknown = set(wanted) - set(API_TOKEN_SCOPES)
        if unknown or not wanted:
            raise CommandError(
                f"unknown or no scopes {sorted(unknown)}; choose from {', '.join(sorted(API_TOKEN_SCOPES))}"
            )
        if expires_in_days is not None and expires_in_days < 1:
            raise CommandError("--expires-in-days must be at least 1")
        expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
        row, token = ApiToken.issue(user=user, name=name, scopes=wanted, expires_at=expires_at)
        self.stdout.write(
            json.dumps(
                {
                    "username": user.get_username(),
                    "token": token,
                    "scopes": row.scopes,
                    "expires_at": row.expires_at.isoformat() if row.expires_at else None,
                }
            )
        )

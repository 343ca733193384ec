import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

API_TOKEN_SCOPES = {
    "read": "GET, HEAD and OPTIONS on the REST API (and the metrics endpoints)",
    "write": "POST, PUT, PATCH and DELETE on the REST API",
    "metrics": "only GET /metrics and /api/v1/operations/metrics/ (a Prometheus scraper)",
}


def api_token_all_scopes() -> list[str]:
    """Every scope: what a token had before scopes existed, and what `issue()` gives by default."""
    return sorted(API_TOKEN_SCOPES)


class ApiToken(models.Model):
    """A REST API token. Only a SHA-256 of the token is stored; the token is shown once.

    A token carries scopes (what kind of request it may make), may expire, and is revoked by
    setting `revoked_at` (or clearing `is_active`, the admin's switch); the user's role permissions
    still decide what it may reach."""

    PREFIX = "cdp_"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True)
    token_hash = models.CharField(max_length=64, unique=True)
    token_prefix = models.CharField(max_length=12)
    scopes = models.JSONField(default=api_token_all_scopes, help_text="Any of: read, write, metrics.")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=True, help_text="Untick to revoke.")

    def __str__(self):
        return f"{self.token_prefix}… ({self.user})"

    @staticmethod
    def hash_token(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    @classmethod
    def issue(cls, *, user, name: str = "", scopes: list[str] | None = None, expires_at=None) -> tuple["ApiToken", str]:
        scopes = api_token_all_scopes() if scopes is None else sorted(set(scopes))
        unknown = set(scopes) - set(API_TOKEN_SCOPES)
        if unknown or not scopes:
            raise ValueError(f"scopes must be a non-empty subset of {', '.join(sorted(API_TOKEN_SCOPES))}")
        token = cls.PREFIX + secrets.token_urlsafe(32)
        row = cls.objects.create(
            user=user,
            name=name,
            token_hash=cls.hash_token(token),
            token_prefix=token[:10],
            scopes=scopes,
            expires_at=expires_at,
        )
        return row, token

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None or not self.is_active

    def is_expired(self, now=None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())

    def has_scope(self, *any_of: str) -> bool:
        return bool(set(self.scopes or ()) & set(any_of))


class AuditEntry(models.Model):
    """Append-only log of staff actions: merges, unmerges, PII reveals, exports, consent edits,
    privacy requests, destination and secret changes. Nothing updates or deletes an entry (a
    database trigger enforces it on PostgreSQL too)."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=150, help_text="user:<name>, api:<name>, or a command or rule.")
    action = models.CharField(
        max_length=64, db_index=True, help_text="e.g. merge.unmerge, pii.reveal, destination.secrets"
    )
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True, db_index=True)
    summary = models.CharField(max_length=300, blank=True, help_text="Readable, never PII.")
    detail = models.JSONField(default=dict, blank=True, help_text="Ids and counts, never PII or secrets.")

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id"])]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor} {self.action}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("Audit entries are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Audit entries are append-only.")


class DeploymentKey(models.Model):
    """A fingerprint of a key every machine must share (cdp_site/deployment_keys.py)."""

    name = models.CharField(max_length=64, unique=True)
    fingerprint = models.CharField(max_length=64, help_text="HMAC-SHA256 under the key of a fixed text.")
    recorded_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.name


from cdp_site.governance_models import *  # noqa: E402, F403
from cdp_site.operations_models import *  # noqa: E402, F403
from cdp_site.pilot_models import *  # noqa: E402, F403

"""Recording staff actions in the append-only audit log. Callers pass ids and counts, never PII."""

from __future__ import annotations

from cdp_site.models import AuditEntry


def actor_of(request) -> str:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return "anonymous"
    via = "api" if getattr(request, "auth", None) is not None else "user"
    return f"{via}:{user.get_username()}"


def audit_record(*, actor: str, action: str, target=None, summary: str = "", **detail) -> AuditEntry:
    """One entry. `target` is a model instance (its label and pk are kept) or None."""
    target_type = target._meta.label_lower if target is not None else ""
    target_id = str(target.pk) if target is not None else ""
    return AuditEntry.objects.create(
        actor=actor[:150],
        action=action[:64],
        target_type=target_type,
        target_id=target_id,
        summary=summary[:300],
        detail=detail,
    )

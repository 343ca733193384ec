"""Profile health: rules that find profiles missing something the law requires, evaluated in SQL.

The rules (each a condition on profiles; a run stores how many profiles break it and a few ids):

- consent_unproven: an active profile's consent summary says a purpose is granted, but the latest
  consent record for that purpose is missing or is a withdrawal. GDPR requires consent to be
  provable; the summary is derived from the records, so this also catches a stale summary.
- email_consent_without_email: email marketing granted, but the profile holds no email identifier
  (the consent cannot be tied to the address it was given for; nothing can be sent anyway).
- sms_consent_without_phone: the same for SMS marketing and phone numbers.
- deleted_still_holds_data: a profile marked deleted still has identifier values or traits: its
  deletion request did not finish purging.

Every count is one query the database answers (no profile is loaded into Python); examples are
profile ids only, never personal data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from cdp_site.governance_models import ProfileHealthRun
from consent import domain as consent_domain
from consent.models import ConsentRecord
from identity.models import Identifier, IdentifierType
from profiles.models import Profile

EXAMPLES_PER_RULE = 20
HISTORY_DEFAULT = 30


@dataclass(frozen=True)
class HealthRule:
    slug: str
    label: str
    description: str
    profiles: Callable[[], QuerySet[Profile]]


def _active() -> QuerySet[Profile]:
    return Profile.objects.filter(status=Profile.ACTIVE)


def _granted(purpose: str) -> Q:
    return Q(**{f"consent__{purpose}__is_granted": True})


def _consent_unproven() -> QuerySet[Profile]:
    profiles = _active()
    broken = Q()
    for purpose in sorted(consent_domain.PURPOSE_SLUGS):
        latest = (
            ConsentRecord.objects.filter(profile_id=OuterRef("pk"), purpose=purpose)
            .order_by("-captured_at", "-id")
            .values("is_granted")[:1]
        )
        alias = f"latest_{purpose}"
        profiles = profiles.alias(**{alias: Subquery(latest)})
        broken |= _granted(purpose) & (Q(**{f"{alias}__isnull": True}) | Q(**{alias: False}))
    return profiles.filter(broken)


def _without_identifier(type_slug: str) -> Exists:
    # The type's id is looked up first, so the subquery reads the (profile, identifier_type) index.
    type_id = IdentifierType.objects.filter(slug=type_slug).values_list("id", flat=True).first()
    return ~Exists(Identifier.objects.filter(profile_id=OuterRef("pk"), identifier_type_id=type_id))


def _email_consent_without_email() -> QuerySet[Profile]:
    return _active().filter(_granted(consent_domain.EMAIL_MARKETING)).filter(_without_identifier("email"))


def _sms_consent_without_phone() -> QuerySet[Profile]:
    return _active().filter(_granted(consent_domain.SMS_MARKETING)).filter(_without_identifier("phone"))


def _deleted_still_holds_data() -> QuerySet[Profile]:
    holding = Identifier.objects.filter(profile_id=OuterRef("pk")).filter(~Q(value="") | ~Q(encrypted_value=""))
    return Profile.objects.filter(status=Profile.DELETED).filter(Exists(holding) | ~Q(traits={}))


RULES = (
    HealthRule(
        "consent_unproven",
        "Consent granted without a consent record",
        "The profile's consent summary says a purpose is granted, but its latest consent record for that purpose "
        "is missing or is a withdrawal: the consent cannot be proven.",
        _consent_unproven,
    ),
    HealthRule(
        "email_consent_without_email",
        "Email marketing granted, no email address",
        "Email marketing consent with no email identifier on the profile to tie it to.",
        _email_consent_without_email,
    ),
    HealthRule(
        "sms_consent_without_phone",
        "SMS marketing granted, no phone number",
        "SMS marketing consent with no phone identifier on the profile to tie it to.",
        _sms_consent_without_phone,
    ),
    HealthRule(
        "deleted_still_holds_data",
        "Deleted profile still holds personal data",
        "A profile marked deleted still has identifier values or traits: its deletion did not finish purging.",
        _deleted_still_holds_data,
    ),
)
RULES_BY_SLUG = {rule.slug: rule for rule in RULES}


# -- writes ------------------------------------------------------------------------------------


def profile_health_run(*, triggered_by: str) -> ProfileHealthRun:
    """Evaluate every rule now and store the counts and example ids."""
    started, ran_at = time.monotonic(), timezone.now()
    counts, examples = {}, {}
    for rule in RULES:
        profiles = rule.profiles()
        counts[rule.slug] = profiles.count()
        examples[rule.slug] = (
            list(profiles.order_by("-id").values_list("id", flat=True)[:EXAMPLES_PER_RULE]) if counts[rule.slug] else []
        )
    return ProfileHealthRun.objects.create(
        ran_at=ran_at,
        duration_ms=round((time.monotonic() - started) * 1000, 1),
        triggered_by=triggered_by[:150],
        counts=counts,
        examples=examples,
    )


# -- reads -------------------------------------------------------------------------------------


def profile_health_latest() -> ProfileHealthRun | None:
    return ProfileHealthRun.objects.order_by("-ran_at", "-id").first()


def profile_health_history(*, limit: int = HISTORY_DEFAULT) -> list[ProfileHealthRun]:
    """The latest runs, oldest first (the order a trend is drawn in)."""
    return list(reversed(ProfileHealthRun.objects.order_by("-ran_at", "-id")[:limit]))


def _sparkline(values: list[int], width: int = 160, height: int = 32) -> str:
    if len(values) < 2:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1
    step = width / (len(values) - 1)
    return " ".join(
        f"{index * step:.1f},{height - 2 - (value - low) / span * (height - 4):.1f}"
        for index, value in enumerate(values)
    )


def profile_health_report(latest: ProfileHealthRun | None, history: list[ProfileHealthRun]) -> list[dict]:
    """One row per rule: the latest count, its examples and its trend across the given runs."""
    rows = []
    for rule in RULES:
        values = [int((run.counts or {}).get(rule.slug, 0)) for run in history]
        rows.append(
            {
                "slug": rule.slug,
                "label": rule.label,
                "description": rule.description,
                "count": (latest.counts or {}).get(rule.slug) if latest else None,
                "examples": (latest.examples or {}).get(rule.slug, []) if latest else [],
                "trend": values,
                "points": _sparkline(values),
                "low": min(values) if values else None,
                "high": max(values) if values else None,
            }
        )
    return rows


def profile_health_enqueue(*, triggered_by: str) -> None:
    """Ask a worker for a run now (the "Run now" button); the daily schedule does the rest."""
    from django_q.tasks import async_task

    async_task(
        "cdp_site.tasks_governance.profile_health_task",
        triggered_by=triggered_by,
        q_options={"task_name": "profile_health_now"},
    )

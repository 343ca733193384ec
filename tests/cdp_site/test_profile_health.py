"""Profile health: each rule flags the profiles seeded to break it and no healthy one; runs store
counts and at most 20 example ids; the page shows the latest run, trends and examples; "Run now"
and the page follow roles."""

import itertools
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from cdp_site.health import EXAMPLES_PER_RULE, RULES, profile_health_run
from cdp_site.models import ProfileHealthRun
from cdp_site.tasks_governance import profile_health_task
from consent.models import ConsentRecord
from identity.models import Identifier, IdentifierType
from profiles.models import Profile

pytestmark = pytest.mark.django_db

_numbers = itertools.count(1)
RULE_SLUGS = [rule.slug for rule in RULES]


def make_profile(*, status=Profile.ACTIVE, granted=(), records=(), identifiers=(), traits=None, withdrawn=()):
    """granted/withdrawn: purposes in the consent summary; records: (purpose, is_granted) in order;
    identifiers: type slugs to give the profile."""
    now = timezone.now()
    summary = {purpose: {"is_granted": True, "captured_at": now.isoformat(), "source_id": None} for purpose in granted}
    summary |= {
        purpose: {"is_granted": False, "captured_at": now.isoformat(), "source_id": None} for purpose in withdrawn
    }
    profile = Profile.objects.create(
        status=status, consent=summary, traits=traits or {}, created_at=now, updated_at=now
    )
    for offset, (purpose, is_granted) in enumerate(records):
        ConsentRecord.objects.create(
            profile=profile, purpose=purpose, is_granted=is_granted, captured_at=now - timedelta(days=10 - offset)
        )
    for type_slug in identifiers:
        identifier_type = IdentifierType.objects.get(slug=type_slug)
        number = next(_numbers)
        normalised = f"person{number}@example.com" if type_slug == "email" else f"+1202555{number:04d}"
        Identifier.objects.create(
            identifier_type=identifier_type,
            profile=profile,
            first_seen_at=now,
            last_seen_at=now,
            **Identifier.stored_values(identifier_type.as_rule(), normalised),
        )
    return profile


@pytest.fixture
def seeded():
    healthy = [
        make_profile(granted=["email_marketing"], records=[("email_marketing", True)], identifiers=["email"]),
        make_profile(
            granted=["sms_marketing", "analytics"],
            records=[("sms_marketing", True), ("analytics", False), ("analytics", True)],
            identifiers=["phone"],
        ),
        make_profile(withdrawn=["email_marketing"], records=[("email_marketing", False)]),  # nothing granted
        make_profile(identifiers=["email"], traits={"first_name": "Ana"}),  # no consent at all: not a breach
        make_profile(status=Profile.DELETED),  # deleted and purged
        # merged away: its consent and identifiers moved to the survivor; not judged
        make_profile(status=Profile.MERGED, granted=["advertising"]),
    ]
    broken = {
        "consent_unproven": [
            make_profile(granted=["advertising"]),  # no record at all
            # granted once, withdrawn later, but the summary still says granted
            make_profile(
                granted=["email_marketing"],
                records=[("email_marketing", True), ("email_marketing", False)],
                identifiers=["email"],
            ),
        ],
        "email_consent_without_email": [
            make_profile(granted=["email_marketing"], records=[("email_marketing", True)], identifiers=["phone"]),
        ],
        "sms_consent_without_phone": [
            make_profile(granted=["sms_marketing"], records=[("sms_marketing", True)], identifiers=["email"]),
        ],
        "deleted_still_holds_data": [
            make_profile(status=Profile.DELETED, identifiers=["email"]),
            make_profile(status=Profile.DELETED, traits={"first_name": "Ben"}),
        ],
    }
    return healthy, broken


def test_rules_flag_the_seeded_problems_and_nothing_else(seeded):
    healthy, broken = seeded

    run = profile_health_run(triggered_by="test")

    assert run.counts == {slug: len(profiles) for slug, profiles in broken.items()}
    assert run.examples == {slug: sorted((p.pk for p in profiles), reverse=True) for slug, profiles in broken.items()}
    flagged = {pk for ids in run.examples.values() for pk in ids}
    assert not flagged & {profile.pk for profile in healthy}
    assert run.total == 6 and run.triggered_by == "test" and run.duration_ms >= 0


def test_examples_are_capped_and_newest_first():
    profiles = [make_profile(granted=["advertising"]) for _ in range(EXAMPLES_PER_RULE + 3)]

    run = profile_health_run(triggered_by="test")

    assert run.counts["consent_unproven"] == EXAMPLES_PER_RULE + 3
    assert run.examples["consent_unproven"] == [p.pk for p in reversed(profiles)][:EXAMPLES_PER_RULE]
    assert run.counts["email_consent_without_email"] == 0 and run.examples["email_consent_without_email"] == []


def test_a_fix_shows_in_the_next_run():
    profile = make_profile(granted=["email_marketing"], records=[("email_marketing", True)])
    assert profile_health_run(triggered_by="test").counts["email_consent_without_email"] == 1
    email_type = IdentifierType.objects.get(slug="email")
    Identifier.objects.create(
        identifier_type=email_type,
        profile=profile,
        first_seen_at=timezone.now(),
        last_seen_at=timezone.now(),
        **Identifier.stored_values(email_type.as_rule(), "fixed@example.com"),
    )
    assert profile_health_run(triggered_by="test").counts["email_consent_without_email"] == 0


def test_counting_is_done_by_the_database(seeded, django_assert_max_num_queries):
    # Per rule a count and an examples query, plus identifier type lookups and the insert.
    with django_assert_max_num_queries(2 * len(RULES) + 3):
        profile_health_run(triggered_by="test")


def test_task_runs_the_check(seeded):
    result = profile_health_task()
    run = ProfileHealthRun.objects.get()
    assert result == {"profile_health_run_id": run.pk, "counts": run.counts}
    assert run.triggered_by == "schedule"


# -- page ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "status"),
    [("marketer", 403), ("guest_services", 403), ("privacy_officer", 200), ("integration_engineer", 200)],
)
def test_page_permissions(client, make_user, role, status):
    client.force_login(make_user(role))
    assert client.get(reverse("governance:profile_health")).status_code == status


@pytest.mark.parametrize(
    ("role", "status"),
    [("marketer", 403), ("guest_services", 403), ("privacy_officer", 302), ("integration_engineer", 403)],
)
def test_run_now_permissions(client, make_user, seeded, role, status):
    client.force_login(make_user(role))
    response = client.post(reverse("governance:profile_health_run"))
    assert response.status_code == status
    # Test settings run django-q2 in sync mode: an allowed request has run the check already.
    runs = list(ProfileHealthRun.objects.all())
    assert len(runs) == (1 if status == 302 else 0)
    if runs:
        assert runs[0].triggered_by.startswith("user:privacy_officer") and runs[0].total == 6


def test_page_shows_latest_counts_trend_and_example_links(client, make_user, seeded, django_assert_max_num_queries):
    _, broken = seeded
    profile_health_run(triggered_by="schedule")
    make_profile(granted=["advertising"])
    latest = profile_health_run(triggered_by="schedule")
    client.force_login(make_user("integration_engineer"))

    with django_assert_max_num_queries(10):
        response = client.get(reverse("governance:profile_health"))

    content = response.content.decode()
    rules = {row["slug"]: row for row in response.context["rules"]}
    assert rules["consent_unproven"]["count"] == 3 and rules["consent_unproven"]["trend"] == [2, 3]
    assert rules["consent_unproven"]["examples"] == latest.examples["consent_unproven"]
    for profile in broken["deleted_still_holds_data"]:
        assert reverse("profiles:profile_detail", args=[profile.pk]) in content
    assert "<polyline" in content and "Run now" not in content  # engineers look, officers run
    fragment = client.get(reverse("governance:profile_health"), {"history": "7"}, headers={"HX-Request": "true"})
    assert b'data-testid="rules"' in fragment.content and b"<html" not in fragment.content


def test_page_before_any_run(client, make_user):
    client.force_login(make_user("privacy_officer"))
    content = client.get(reverse("governance:profile_health")).content.decode()
    assert "No health check has run yet" in content and "Run now" in content

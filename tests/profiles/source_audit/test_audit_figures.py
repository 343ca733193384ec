"""The audit's figures, from the three-source world built through the real endpoints and pipeline
(see conftest.py): exact counts and shares, the same on PostgreSQL and SQLite."""

from datetime import timedelta

import pytest
from django.utils import timezone

from profiles.models import RawEvent, Source, SourceAuditRun
from profiles.source_audit import source_audit_run
from profiles.tasks_source_audit import source_audit_task

pytestmark = pytest.mark.django_db


@pytest.fixture
def figures(audit_world):
    return source_audit_run(triggered_by="test").figures


def test_events_per_type_and_raw_events_per_status(figures):
    bookings, payments, web = (figures["sources"][slug] for slug in ("bookings", "payments", "web"))
    assert bookings["events_by_type"] == {"booking.created": 4, "booking.cancelled": 1}
    assert bookings["raw_events"]["by_status"] == {
        "pending": 0,
        "processed": 5,
        "quarantined": 2,
        "failed": 0,
        "dropped": 0,
    }
    assert payments["events_by_type"] == {"customer.created": 4, "payment.succeeded": 1}
    assert payments["raw_events"]["by_topic"] == {"customer.created": 4, "payment_intent.succeeded": 1}
    assert web["events_by_type"] == {"track.custom": 3, "page.viewed": 1, "profile.identified": 1}
    assert web["raw_events"]["total"] == 5


def test_timestamp_coverage_per_sender_field(figures):
    web = figures["sources"]["web"]["timestamps"]
    assert web["field"] == "originalTimestamp or timestamp"
    assert (web["raw_events"], web["aware"], web["naive"], web["missing"]) == (5, 3, 1, 1)
    assert (web["aware_share"], web["naive_share"], web["missing_share"]) == (0.6, 0.2, 0.2)
    assert (web["events"], web["future"], web["future_share"]) == (5, 1, 0.2)

    bookings = figures["sources"]["bookings"]["timestamps"]
    assert (bookings["aware"], bookings["naive"], bookings["missing"], bookings["aware_share"]) == (6, 1, 0, 0.8571)
    payments = figures["sources"]["payments"]["timestamps"]  # Stripe's `created`: epoch seconds, aware
    assert (payments["field"], payments["aware_share"], payments["future"]) == ("created", 1.0, 0)


def test_identifier_coverage_per_type(figures):
    payments = figures["sources"]["payments"]["identifiers"]
    assert payments["profiles_reached"] == 4
    assert payments["by_type"] == {
        "email": {"identifiers": 4, "profiles": 4, "coverage": 1.0, "is_pii": True},
        "stripe_customer_id": {"identifiers": 4, "profiles": 4, "coverage": 1.0, "is_pii": False},
    }
    web = figures["sources"]["web"]["identifiers"]
    assert web["profiles_reached"] == 3
    assert {slug: row["coverage"] for slug, row in web["by_type"].items()} == {
        "anonymous_id": 0.3333,
        "email": 0.3333,
        "user_id": 0.6667,
    }


def test_duplicates_redeliveries_and_content_duplicates(figures):
    web = figures["sources"]["web"]["duplicates"]
    assert web == {
        "deliveries": 6,
        "redeliveries": 1,
        "redelivery_rate": 0.1667,
        "content_duplicates": 1,
        "content_duplicate_rate": 0.2,
    }
    assert figures["sources"]["bookings"]["duplicates"]["redeliveries"] == 0


def test_contract_failures_and_unknown_properties(figures):
    contracts = figures["sources"]["bookings"]["contracts"]
    assert (contracts["quarantined"], contracts["contract_failures"], contracts["mapping_failures"]) == (2, 1, 1)
    assert contracts["quarantine_rate"] == 0.2857
    assert [reason["count"] for reason in contracts["top_reasons"]] == [1, 1]
    assert (
        contracts["top_reasons"][0]["reason"] == "contract: booking.created: required property 'booking_id' is missing"
    )
    assert figures["sources"]["bookings"]["unknown_properties"] == {
        "count": 2,
        "properties": [
            {"event_type": "booking.cancelled", "property": "room", "occurrences": 1},
            {"event_type": "booking.created", "property": "room", "occurrences": 4},
        ],
    }
    assert figures["sources"]["payments"]["contracts"]["quarantined"] == 0


def test_identifier_overlap_between_every_pair_of_sources(figures):
    bookings = figures["sources"]["bookings"]["overlap"]
    # Bookings sent a, b, c, d; Payments a, b, c, e; Web a.
    assert bookings["payments"]["email"] == {"shared": 3, "total": 4, "share": 0.75}
    assert bookings["web"]["email"] == {"shared": 1, "total": 4, "share": 0.25}
    assert figures["sources"]["payments"]["overlap"]["bookings"]["email"]["share"] == 0.75
    assert figures["sources"]["payments"]["overlap"]["bookings"]["stripe_customer_id"]["share"] == 0.0
    assert figures["sources"]["web"]["overlap"]["payments"]["email"] == {"shared": 1, "total": 1, "share": 1.0}
    assert figures["sources"]["web"]["overlap"]["payments"]["all"] == {"shared": 1, "total": 4, "share": 0.25}


def test_activation_matchability_and_exposure(figures):
    bookings, payments, web = (figures["sources"][slug] for slug in ("bookings", "payments", "web"))
    assert bookings["matchability"] == {"profiles": 4, "shared_profiles": 3, "shared_profile_share": 0.75}
    assert web["matchability"]["shared_profile_share"] == 0.3333
    assert bookings["activation"]["activated_profile_share"] == 1.0
    assert bookings["activation"]["used_event_types"] == ["booking.created"]
    assert bookings["activation"]["destinations"] == {"mailer": {"segments": {"bookers": 4}, "event_types": []}}
    assert (payments["activation"]["activated_profiles"], payments["activation"]["revenue"]) == (3, 20.0)
    assert bookings["exposure"]["consent_purposes"] == {"email_marketing": {"granted": 1, "withdrawn": 0}}
    assert web["exposure"]["consent_purposes"] == {"advertising": {"granted": 1, "withdrawn": 0}}
    assert payments["exposure"]["pii_traits"] == ["email", "first_name", "last_name", "name"]


def test_scorecard_ranks_sources_and_is_written_to_the_sources(figures):
    scores = {
        slug: tuple(
            row["scorecard"][k] for k in ("activation_impact", "matchability", "ingestion_complexity", "pii_exposure")
        )
        for slug, row in figures["sources"].items()
    }
    assert scores == {"bookings": (4, 4, 4, 4), "payments": (4, 4, 2, 3), "web": (2, 2, 2, 4)}
    assert {slug: row["scorecard"]["priority"] for slug, row in figures["sources"].items()} == {
        "bookings": 3.4,
        "payments": 3.85,
        "web": 2.3,
    }
    assert figures["ranking"] == ["payments", "bookings", "web"]
    stored = {
        s.slug: (s.activation_impact, s.matchability, s.ingestion_complexity, s.pii_exposure)
        for s in Source.objects.all()
    }
    assert stored == scores


def test_the_task_is_safe_to_run_twice_and_bounded_by_its_window(audit_world):
    first = source_audit_task(triggered_by="schedule")
    RawEvent.objects.filter(source=audit_world["web"], external_id="web-2").update(
        received_at=timezone.now() - timedelta(days=3)
    )
    second = source_audit_task(triggered_by="schedule", window_days=2)
    assert SourceAuditRun.objects.count() == 2
    assert first["sources"] == second["sources"] == 3
    runs = {run.pk: run for run in SourceAuditRun.objects.all()}
    assert runs[first["source_audit_run_id"]].figures["sources"]["web"]["raw_events"]["total"] == 5
    later = runs[second["source_audit_run_id"]]
    assert later.window_days == 2
    assert later.figures["sources"]["web"]["raw_events"]["total"] == 4
    assert later.figures["sources"]["web"]["events_by_type"] == {"track.custom": 3, "profile.identified": 1}


def test_the_audit_reads_aggregates_not_rows(audit_world, django_assert_max_num_queries):
    # A fixed number of queries per source, whatever the number of events.
    with django_assert_max_num_queries(3 * 25 + 10):
        source_audit_run(triggered_by="test")

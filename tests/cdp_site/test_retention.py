"""Retention: what each policy purges (and what it keeps), the purge log, idempotence, the time
budget, the `retention_apply` command, the page and its permissions, and (PostgreSQL) the indexes
the batches read."""

import itertools
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.models import Schedule

from cdp_site import retention
from cdp_site.models import AuditEntry, PurgeRun, RetentionPolicy
from cdp_site.retention import (
    PURGED_KEY,
    QUARANTINE_PURGED_ERROR,
    RAW_EVENT_DUE_INDEX,
    events_due,
    raw_payloads_due,
    retention_apply,
    retention_policy_update,
)
from consent.models import ConsentRecord
from profiles.models import Event, Profile, RawEvent, TraitValue
from profiles.processing import raw_events_process

pytestmark = pytest.mark.django_db

ROLES = ["marketer", "guest_services", "privacy_officer", "integration_engineer"]
_ids = itertools.count(1)
PAYLOAD = {"email": "ana@example.com", "amount": 12}
HEADERS = {"user-agent": "sdk/1.0", "x-forwarded-for": "203.0.113.9"}


def days_ago(days: float):
    return timezone.now() - timedelta(days=days)


@pytest.fixture
def raw(canonical_source):
    def make(status, age_days, **fields):
        return RawEvent.objects.create(
            source=canonical_source,
            external_id=f"ext-{next(_ids)}",
            received_at=days_ago(age_days),
            payload=dict(PAYLOAD),
            headers=dict(HEADERS),
            status=status,
            error=fields.pop("error", ""),
            **fields,
        )

    return make


@pytest.fixture
def event(canonical_source, raw):
    profile = Profile.objects.create(created_at=timezone.now(), updated_at=timezone.now(), lifetime_revenue=50)

    def make(type_, age_days, *, raw_event=None):
        parent = raw_event or raw(RawEvent.PROCESSED, 1)
        return Event.objects.create(
            profile=profile,
            source=canonical_source,
            raw_event=parent,
            sequence=parent.events.count(),
            type=type_,
            occurred_at=days_ago(age_days),
            received_at=parent.received_at,
        )

    make.profile = profile
    return make


def stored(raw_event):
    raw_event.refresh_from_db()
    return raw_event


def is_purged(raw_event) -> bool:
    raw_event = stored(raw_event)
    return PURGED_KEY in raw_event.payload and raw_event.headers == {}


# -- defaults --------------------------------------------------------------------------------


def test_default_policies():
    assert dict(RetentionPolicy.objects.values_list("data_class", "keep_days")) == {
        "raw_events": 90,
        "events": 730,
        "quarantined": 30,
    }
    assert set(RetentionPolicy.objects.values_list("is_active", flat=True)) == {True}


@pytest.mark.parametrize(
    ("name", "func"),
    [
        ("retention_apply", "cdp_site.tasks_governance.retention_apply_task"),
        ("profile_health", "cdp_site.tasks_governance.profile_health_task"),
    ],
)
def test_daily_schedules(name, func):
    schedule = Schedule.objects.get(name=name)
    assert (schedule.func, schedule.schedule_type, schedule.repeats) == (func, Schedule.DAILY, -1)
    assert schedule.next_run > timezone.now()
    assert callable(import_string(func))


# -- what is purged --------------------------------------------------------------------------


def test_purges_only_what_is_older_than_each_cutoff(raw, event):
    old_processed = raw(RawEvent.PROCESSED, 100)
    old_dropped = raw(RawEvent.DROPPED, 91)
    young_processed = raw(RawEvent.PROCESSED, 89)
    old_pending = raw(RawEvent.PENDING, 400)  # work still to do: never purged
    old_quarantined = raw(RawEvent.QUARANTINED, 31, error="mapping: 'ana@example.com' is not a number")
    old_failed = raw(RawEvent.FAILED, 45, error="mapper error: KeyError")
    young_quarantined = raw(RawEvent.QUARANTINED, 29, error="contract: missing")
    old_events = [event("order.completed", 731), event("page.viewed", 1000), event("page.viewed", 800)]
    young_events = [event("order.completed", 729), event("page.viewed", 10)]

    run = retention_apply(triggered_by="test")

    assert run.status == PurgeRun.COMPLETED and run.error == "" and run.finished_at
    assert run.counts == {"quarantined": 2, "raw_events": 2, "events": 3}
    assert run.keep_days == {"quarantined": 30, "raw_events": 90, "events": 730}
    assert run.batches == 4  # one per class, plus one per event type with old events
    for data_class, keep_days in run.keep_days.items():
        cutoff = timezone.datetime.fromisoformat(run.cutoffs[data_class])
        assert cutoff == run.started_at - timedelta(days=keep_days)

    assert is_purged(old_processed) and is_purged(old_dropped)
    assert stored(old_processed).payload[PURGED_KEY] == {
        "by": "retention",
        "on": run.started_at.date().isoformat(),
        "keep_days": 90,
    }
    assert is_purged(old_quarantined) and is_purged(old_failed)
    assert stored(old_quarantined).error == QUARANTINE_PURGED_ERROR  # the value it quoted is gone
    assert stored(old_quarantined).status == RawEvent.QUARANTINED  # rows and statuses stay
    for kept in (young_processed, old_pending, young_quarantined):
        assert stored(kept).payload == PAYLOAD and stored(kept).headers == HEADERS
    assert stored(young_quarantined).error == "contract: missing"

    assert set(Event.objects.values_list("id", flat=True)) == {e.pk for e in young_events}
    assert not Event.objects.filter(pk__in=[e.pk for e in old_events]).exists()
    # Raw events outlive their events; the profile's derived figures stay.
    assert RawEvent.objects.count() == 7 + 5
    assert Profile.objects.get(pk=event.profile.pk).lifetime_revenue == Decimal("50")


def test_a_second_run_purges_nothing_more(raw, event):
    raw(RawEvent.PROCESSED, 100)
    raw(RawEvent.QUARANTINED, 40)
    event("page.viewed", 800)
    first = retention_apply(triggered_by="test")
    payloads = list(RawEvent.objects.order_by("id").values_list("payload", "headers", "error"))

    second = retention_apply(triggered_by="test")

    assert first.counts == {"quarantined": 1, "raw_events": 1, "events": 1}
    assert second.counts == {"quarantined": 0, "raw_events": 0, "events": 0}
    assert (second.status, second.batches) == (PurgeRun.COMPLETED, 0)
    assert list(RawEvent.objects.order_by("id").values_list("payload", "headers", "error")) == payloads
    assert PurgeRun.objects.count() == 2


def test_one_transaction_per_batch_and_progress(raw, event):
    for _ in range(5):
        raw(RawEvent.PROCESSED, 120)
    for _ in range(3):
        event("page.viewed", 900)
    seen = []

    run = retention_apply(triggered_by="test", batch_size=2, progress=lambda dc, n: seen.append((dc, n)))

    assert run.counts == {"quarantined": 0, "raw_events": 5, "events": 3}
    assert run.batches == 3 + 2  # 2+2+1 payloads, 2+1 events
    assert seen == [("raw_events", 2), ("raw_events", 4), ("raw_events", 5), ("events", 2), ("events", 3)]


def test_inactive_policy_is_not_applied(raw, event):
    RetentionPolicy.objects.filter(data_class="events").update(is_active=False)
    kept = event("page.viewed", 5000)
    raw(RawEvent.PROCESSED, 100)

    run = retention_apply(triggered_by="test")

    assert run.counts == {"quarantined": 0, "raw_events": 1}
    assert "events" not in run.cutoffs
    assert Event.objects.filter(pk=kept.pk).exists()


def test_time_budget_stops_between_batches_and_the_next_run_carries_on(raw):
    rows = [raw(RawEvent.PROCESSED, 100) for _ in range(3)]

    stopped = retention_apply(triggered_by="test", max_seconds=1e-9)
    assert (stopped.status, stopped.total) == (PurgeRun.PARTIAL, 0)
    assert not any(is_purged(row) for row in rows)

    carried_on = retention_apply(triggered_by="test")
    assert (carried_on.status, carried_on.counts["raw_events"]) == (PurgeRun.COMPLETED, 3)


def test_a_failing_batch_is_logged_with_what_was_committed_before(raw, monkeypatch):
    for _ in range(3):
        raw(RawEvent.PROCESSED, 100)
    real = retention._raw_payload_batch
    calls = itertools.count()

    def flaky(plan, *args):
        if plan.data_class == "raw_events" and next(calls) == 1:  # its second batch
            raise RuntimeError("disk full")
        return real(plan, *args)

    monkeypatch.setattr(retention, "_raw_payload_batch", flaky)
    with pytest.raises(RuntimeError, match="disk full"):
        retention_apply(triggered_by="test", batch_size=2)

    run = PurgeRun.objects.get()
    assert (run.status, run.error) == (PurgeRun.FAILED, "RuntimeError: disk full")
    assert run.counts["raw_events"] == 2 and run.batches == 1
    assert RawEvent.objects.filter(payload__has_key=PURGED_KEY).count() == 2


def test_consent_records_and_traits_survive_with_their_raw_event(send):
    """End to end: a real event with consent, processed, then aged past every cutoff."""
    received = send(
        {
            "type": "profile.identified",
            "at": days_ago(800).isoformat(),
            "ids": [["email", "ana@example.com"]],
            "traits": {"first_name": "Ana"},
            "consent": [["email_marketing", True]],
        }
    )
    raw_events_process()
    RawEvent.objects.filter(pk=received.pk).update(received_at=days_ago(800))
    record = ConsentRecord.objects.get()
    assert record.raw_event_id == received.pk

    run = retention_apply(triggered_by="test")

    assert run.counts == {"quarantined": 0, "raw_events": 1, "events": 1}
    assert is_purged(received)  # the row stays: nothing pointing at it is touched
    record = ConsentRecord.objects.get()
    assert (record.raw_event_id, record.purpose, record.is_granted) == (received.pk, "email_marketing", True)
    assert TraitValue.objects.filter(raw_event=received, key="first_name").exists()
    profile = Profile.objects.get(pk=record.profile_id)
    assert profile.consent["email_marketing"]["is_granted"] is True and profile.clear_traits["first_name"] == "Ana"


# -- policy changes --------------------------------------------------------------------------


def test_policy_change_is_audited():
    policy = retention_policy_update(data_class="events", keep_days=365, is_active=True, actor="user:pia")

    assert (policy.keep_days, policy.updated_by) == (365, "user:pia")
    entry = AuditEntry.objects.get(action="retention.policy_change")
    assert (entry.actor, entry.target_type, entry.target_id) == ("user:pia", "cdp_site.retentionpolicy", str(policy.pk))
    assert entry.detail == {
        "data_class": "events",
        "before": {"keep_days": 730, "is_active": True},
        "after": {"keep_days": 365, "is_active": True},
    }
    retention_policy_update(data_class="events", keep_days=365, is_active=True, actor="user:pia")
    assert AuditEntry.objects.filter(action="retention.policy_change").count() == 1  # no change, no entry
    with pytest.raises(ValueError, match="keep_days"):
        retention_policy_update(data_class="events", keep_days=0, is_active=True, actor="user:pia")


# -- command ---------------------------------------------------------------------------------


def test_command_dry_run_counts_and_changes_nothing(raw, event, capsys):
    row = raw(RawEvent.PROCESSED, 100)
    raw(RawEvent.QUARANTINED, 40)
    raw(RawEvent.QUARANTINED, 41)
    event("page.viewed", 800)

    call_command("retention_apply", "--dry-run")

    out = capsys.readouterr().out
    assert "quarantined: keep 30 days" in out and "would purge 2 quarantined/failed payloads" in out
    assert "would purge 1 raw event payloads" in out and "would purge 1 events" in out
    assert "Dry run: nothing purged." in out
    assert not is_purged(row) and Event.objects.count() == 1 and not PurgeRun.objects.exists()


def test_command_applies_and_logs(raw, capsys):
    raw(RawEvent.PROCESSED, 100)

    call_command("retention_apply", "--batch-size", "10")

    out = capsys.readouterr().out
    run = PurgeRun.objects.get()
    assert run.triggered_by == "command" and run.counts["raw_events"] == 1
    assert "purged 1 raw event payloads" in out and f"Purge run #{run.pk}: completed" in out


def test_task_applies_with_a_time_budget(raw):
    from cdp_site.tasks_governance import retention_apply_task

    raw(RawEvent.PROCESSED, 100)
    result = retention_apply_task()
    assert result["status"] == "completed" and result["counts"]["raw_events"] == 1
    assert PurgeRun.objects.get().triggered_by == "schedule"


# -- page ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "status"),
    [("marketer", 403), ("guest_services", 403), ("privacy_officer", 200), ("integration_engineer", 200)],
)
def test_page_permissions(client, make_user, role, status):
    client.force_login(make_user(role))
    assert client.get(reverse("governance:retention")).status_code == status


@pytest.mark.parametrize(
    ("role", "status"),
    [("marketer", 403), ("guest_services", 403), ("privacy_officer", 302), ("integration_engineer", 403)],
)
def test_policy_edit_permissions(client, make_user, role, status):
    client.force_login(make_user(role))
    url = reverse("governance:retention_policy_edit", args=["events"])
    response = client.post(url, {"events-keep_days": "400", "events-is_active": "on"})
    assert response.status_code == status
    changed = status == 302
    assert RetentionPolicy.objects.get(data_class="events").keep_days == (400 if changed else 730)
    assert AuditEntry.objects.filter(action="retention.policy_change").exists() is changed


def test_page_lists_policies_and_the_purge_log(client, make_user, raw, django_assert_max_num_queries):
    raw(RawEvent.PROCESSED, 100)
    retention_apply(triggered_by="command")
    client.force_login(make_user("privacy_officer"))
    with django_assert_max_num_queries(12):
        response = client.get(reverse("governance:retention"))
    content = response.content.decode()
    assert "Raw event payloads (processed)" in content and "730 days" in content
    assert 'name="raw_events-keep_days"' in content  # an editable form for privacy officers
    log = response.context["runs"]
    assert len(log) == 1 and log[0]["cells"][0]["count"] == 1  # raw_events column
    fragment = client.get(reverse("governance:retention"), headers={"HX-Request": "true"})
    assert b'data-testid="purge-log"' in fragment.content and b"<html" not in fragment.content


def test_page_is_read_only_for_integration_engineers(client, make_user):
    client.force_login(make_user("integration_engineer"))
    content = client.get(reverse("governance:retention")).content.decode()
    assert "keep_days" not in content and "730 days" in content


def test_invalid_policy_is_refused(client, make_user):
    client.force_login(make_user("privacy_officer"))
    url = reverse("governance:retention_policy_edit", args=["events"])
    response = client.post(url, {"events-keep_days": "0"})
    assert response.status_code == 400 and b'role="alert"' in response.content
    assert RetentionPolicy.objects.get(data_class="events").keep_days == 730
    assert client.post(reverse("governance:retention_policy_edit", args=["nope"]), {}).status_code == 404


def test_menu_entries_follow_roles(client, make_user):
    from cdp_site.navigation import menu_for

    labels = {role: {entry["label"] for entry in menu_for(make_user(role))} for role in ROLES}
    assert {"Retention", "Profile health"} <= labels["privacy_officer"]
    assert {"Retention", "Profile health"} <= labels["integration_engineer"]
    assert not {"Retention", "Profile health"} & labels["marketer"]


# -- PostgreSQL: the batches read an index --------------------------------------------------


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL plans")
def test_batches_read_indexes(raw, event):
    raw(RawEvent.PROCESSED, 100)
    event("page.viewed", 800)
    cutoff = days_ago(90)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # tiny tables: show the index is usable
    for data_class in ("raw_events", "quarantined"):
        plan = raw_payloads_due(data_class, cutoff).values("id")[:100].explain()
        assert RAW_EVENT_DUE_INDEX in plan, plan
    plan = events_due("page.viewed", cutoff).values("id")[:100].explain()
    # The (type, occurred_at) index: each monthly partition's copy is named after the partition.
    assert "profiles_ev_type_" in plan or "_type_occurred_at_idx" in plan, plan
    assert retention.event_types() == ["page.viewed"]

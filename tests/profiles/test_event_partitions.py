"""The events table partitioned by month on PostgreSQL (profiles/partitions.py, migration 0005),
and the EXPLAIN checks of the queries that read it (profiles/event_query_plans.py)."""

from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django_q.models import Schedule

from profiles.event_query_plans import CHECKS, explain_all
from profiles.models import Event, RawEvent
from profiles.partitions import (
    DEFAULT,
    add_months,
    convert_table,
    ensure_event_partitions,
    event_partitions,
    is_partitioned,
    month_start,
    partition_name,
)
from profiles.processing import raw_events_process, raw_events_replay
from profiles.tasks import event_partitions_maintain_task
from tests.profiles.processing.conftest import event

pytestmark = pytest.mark.django_db
postgres = pytest.mark.skipif(connection.vendor != "postgresql", reason="partitioning is PostgreSQL's")


def where(event_id: int) -> str:
    """The partition holding an event."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM profiles_event WHERE id = %s", [event_id])
        return cursor.fetchone()[0]


def months(*names: str) -> set[str]:
    return {p.name for p in event_partitions()} & set(names)


def test_months_arithmetic():
    assert month_start(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == datetime(2026, 12, 1, tzinfo=UTC)
    assert add_months(datetime(2026, 11, 1, tzinfo=UTC), 3) == datetime(2027, 2, 1, tzinfo=UTC)
    assert add_months(datetime(2026, 1, 1, tzinfo=UTC), -1) == datetime(2025, 12, 1, tzinfo=UTC)
    assert partition_name(datetime(2027, 2, 1, tzinfo=UTC)) == "profiles_event_p202702"


@pytest.mark.skipif(connection.vendor == "postgresql", reason="SQLite keeps a plain table")
def test_on_sqlite_the_table_is_plain_and_maintenance_does_nothing(capsys):
    assert not is_partitioned()
    assert ensure_event_partitions().as_dict() == {"created": [], "moved_rows": 0}
    call_command("event_partitions", "--ensure")
    assert "not partitioned" in capsys.readouterr().out
    with pytest.raises(CommandError, match="PostgreSQL"):
        call_command("explain_event_queries")


@postgres
def test_the_migration_partitions_by_month_with_the_partition_key_in_every_unique_index():
    assert is_partitioned()
    now = month_start(timezone.now())
    names = {p.name for p in event_partitions()}
    assert DEFAULT in names
    assert {partition_name(add_months(now, n)) for n in range(4)} <= names
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'profiles_event'::regclass AND contype IN ('p', 'u') ORDER BY conname"
        )
        assert cursor.fetchall() == [
            ("event_unique_per_raw_event", "UNIQUE (raw_event_id, sequence, occurred_at)"),
            ("profiles_event_pkey", "PRIMARY KEY (id, occurred_at)"),
        ]
    schedule = Schedule.objects.get(name="event_partitions_maintain")
    assert (schedule.func, schedule.schedule_type) == ("profiles.tasks.event_partitions_maintain_task", "D")


@postgres
def test_processed_events_land_in_their_month_and_past_dates_in_the_default_partition(send):
    this_month = timezone.now().replace(day=2, hour=9, minute=0, second=0, microsecond=0)
    send(event(ids=[("email", "ada@example.com")], at=this_month.isoformat()))
    send(event(ids=[("email", "ada@example.com")], at="1999-05-01T10:00:00+00:00"))
    raw_events_process()

    recent, old = Event.objects.order_by("-occurred_at")
    assert where(recent.id) == partition_name(month_start(this_month))
    assert where(old.id) == DEFAULT
    # Django still reads and writes events by their id alone.
    assert Event.objects.get(pk=old.pk).occurred_at.year == 1999
    Event.objects.filter(pk=recent.pk).update(name="renamed")
    assert Event.objects.get(pk=recent.pk).name == "renamed"


@postgres
def test_the_same_raw_event_still_cannot_yield_an_event_twice(send):
    raw = send(event(ids=[("email", "ada@example.com")], at="2026-01-05T10:00:00+00:00"))
    raw_events_process()
    RawEvent.objects.filter(pk=raw.pk).update(status=RawEvent.QUARANTINED)
    raw_events_replay(raw_event_ids=[raw.pk])
    raw_events_process()
    assert Event.objects.filter(raw_event=raw).count() == 1

    original = Event.objects.get(raw_event=raw)
    copy = Event.objects.filter(pk=original.pk).values().get()
    copy.pop("id")
    with pytest.raises(IntegrityError), transaction.atomic():
        Event.objects.create(**copy)


@postgres
def test_ensure_moves_a_backfilled_month_out_of_the_default_partition_once(send):
    for day in (3, 17, 28):
        send(event(ids=[("email", f"p{day}@example.com")], at=f"2024-03-{day:02d}T10:00:00+00:00"))
    send(event(ids=[("email", "april@example.com")], at="2024-04-02T10:00:00+00:00"))
    raw_events_process()
    ids = set(Event.objects.values_list("id", flat=True))
    assert {where(pk) for pk in ids} == {DEFAULT}

    result = ensure_event_partitions(since=datetime(2024, 3, 1, tzinfo=UTC), split_min_rows=10**6)

    assert result.created[:2] == ["profiles_event_p202403", "profiles_event_p202404"]
    assert result.moved_rows == 4
    assert set(Event.objects.values_list("id", flat=True)) == ids
    assert sorted(where(pk) for pk in ids) == ["profiles_event_p202403"] * 3 + ["profiles_event_p202404"]
    # The new partitions got the parent's indexes and constraints.
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'profiles_event_p202403'")
        assert cursor.fetchone()[0] == 6
    assert ensure_event_partitions(since=datetime(2024, 3, 1, tzinfo=UTC)).as_dict() == {
        "created": [],
        "moved_rows": 0,
    }


@postgres
def test_a_crowded_month_of_the_default_partition_is_split_out_by_the_daily_task(send, settings):
    for day in range(1, 6):
        send(event(ids=[("email", f"p{day}@example.com")], at=f"2023-07-{day:02d}T10:00:00+00:00"))
    send(event(ids=[("email", "lonely@example.com")], at="2023-09-01T10:00:00+00:00"))
    raw_events_process()
    settings.EVENT_PARTITION_SPLIT_MIN_ROWS = 5
    settings.EVENT_PARTITION_MONTHS_AHEAD = 5

    result = event_partitions_maintain_task()

    now = month_start(timezone.now())
    assert "profiles_event_p202307" in result["created"]
    assert "profiles_event_p202309" not in result["created"]  # one row: stays in the default partition
    assert {partition_name(add_months(now, 4)), partition_name(add_months(now, 5))} <= set(result["created"])
    assert result["moved_rows"] == 5
    assert Event.objects.filter(occurred_at__year=2023).count() == 6
    assert event_partitions_maintain_task()["created"] == []


@postgres
def test_the_conversion_round_trips_rows_ids_and_names(send):
    send(event(ids=[("email", "ada@example.com")], at="2026-02-05T10:00:00+00:00"))
    send(event(ids=[("email", "bob@example.com")], at="2025-06-05T10:00:00+00:00"))
    raw_events_process()
    before = list(Event.objects.order_by("id").values_list("id", "profile_id", "occurred_at", "raw_event_id"))

    with connection.schema_editor() as editor:
        convert_table(editor, partitioned=False)
    assert not is_partitioned()
    assert list(Event.objects.order_by("id").values_list("id", "profile_id", "occurred_at", "raw_event_id")) == before
    with connection.schema_editor() as editor:
        convert_table(editor, partitioned=True)
    assert is_partitioned()
    assert months("profiles_event_p202602", "profiles_event_p202506") == {
        "profiles_event_p202602",
        "profiles_event_p202506",
    }
    assert list(Event.objects.order_by("id").values_list("id", "profile_id", "occurred_at", "raw_event_id")) == before
    # The identity sequence carries on after the highest id.
    send(event(ids=[("email", "cy@example.com")], at="2026-02-06T10:00:00+00:00"))
    raw_events_process()
    assert Event.objects.order_by("-id").first().id > before[-1][0]


@postgres
def test_ensure_and_the_command_refuse_bad_arguments(capsys):
    with pytest.raises(CommandError, match="2025-01"):
        call_command("event_partitions", "--ensure", "--from", "March")
    with pytest.raises(CommandError, match="--ensure"):
        call_command("event_partitions", "--from", "2025-01")
    call_command("event_partitions", "--ensure", "--from", "2025-01", "--exact")
    out = capsys.readouterr().out
    assert "profiles_event_p202501" in out and "(default)" in out


# -- EXPLAIN --------------------------------------------------------------------------------------


@pytest.fixture
def year_of_events(django_db_blocker):
    """About 24,000 events over thirteen months for 1,500 profiles, written in SQL like the segment
    benchmark's data, with their months partitioned and statistics fresh."""
    from profiles.models import Source
    from profiles.sources import source_create

    now = timezone.now()
    source = Source.objects.first() or source_create(name="Plans", kind="csv")[0]
    ensure_event_partitions(since=add_months(month_start(now), -13))
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO profiles_profile (status, traits, trait_provenance, consent, lifecycle, lifetime_revenue, "
            "merge_confidence, created_at, updated_at) SELECT 'active', jsonb_build_object('city', "
            "(ARRAY['Paris','London','Berlin'])[1 + n % 3], 'age', 18 + n % 60), '{}', "
            "jsonb_build_object('email_marketing', jsonb_build_object('is_granted', true)), 'customer', 0, 1.0, "
            "now(), now() FROM generate_series(1, 1500) AS n"
        )
        cursor.execute("SELECT min(id), max(id) FROM profiles_profile")
        low, high = cursor.fetchone()
        cursor.execute(
            "INSERT INTO profiles_rawevent (source_id, external_id, topic, received_at, payload, headers, status, "
            "error, attempts) SELECT %s, 'plan-' || r, '', now(), '{}', '{}', 'processed', '', 1 "
            "FROM generate_series(0, 24) AS r",
            [source.pk],
        )
        cursor.execute("SELECT min(id) FROM profiles_rawevent WHERE external_id LIKE 'plan-%'")
        first_raw = cursor.fetchone()[0]
        cursor.execute(
            "INSERT INTO profiles_event (profile_id, source_id, raw_event_id, sequence, type, name, occurred_at, "
            "received_at, properties, currency) SELECT %(low)s + (n * 7919) %% (%(high)s - %(low)s + 1), %(source)s, "
            "%(first_raw)s + n / 1000, n %% 1000, (ARRAY['page.viewed','class.attended','booking.created',"
            "'order.completed','payment.succeeded','product.viewed'])[1 + n %% 6], '', "
            "%(now)s - (n %% 395) * interval '1 day' - (n %% 24) * interval '1 hour', %(now)s, '{}', '' "
            "FROM generate_series(0, 23999) AS n",
            {"low": low, "high": high, "source": source.pk, "first_raw": first_raw, "now": now},
        )
        cursor.execute("ANALYZE profiles_event")
        cursor.execute("ANALYZE profiles_profile")
    return now


@postgres
def test_each_query_reads_only_its_months_and_has_an_index_to_use(year_of_events):
    results = explain_all(year_of_events, without_seqscan=True)

    assert [result.check.name for result in results] == [check.name for check in CHECKS]
    problems = {result.check.name: result.problems for result in results if not result.ok}
    assert problems == {}
    by_name = {result.check.name: result for result in results}
    # A 30/90-day segment reads four months at most, not the thirteen of data.
    assert 1 < len(by_name["segment: event count in 30 days, absence in 90 days"].partitions) <= 4
    assert len(by_name["computed trait: count in 30 days"].partitions) <= 2
    assert by_name["profile timeline"].indexes == {"profile_id_occurred_at_idx"}
    assert by_name["events of processed raw events"].indexes == {"raw_event_id_sequence_occurred_at_key"}
    assert all(result.milliseconds > 0 for result in results)


@postgres
def test_the_real_planner_prunes_the_same_months(year_of_events):
    # Without forcing indexes the planner may scan small partitions, but never more months.
    for result in explain_all(year_of_events):
        if result.allowed_partitions is not None:
            assert len(result.partitions) <= result.allowed_partitions, result.check.name


@postgres
def test_a_query_reading_every_month_is_reported(year_of_events, monkeypatch):
    from profiles import event_query_plans

    unbounded = event_query_plans.PlanCheck(
        "unbounded", "nobody", lambda now, s: Event.objects.filter(type=s["type"]), window_days=30
    )
    monkeypatch.setattr(event_query_plans, "CHECKS", (unbounded,))
    (result,) = explain_all(year_of_events)
    assert not result.ok
    assert "the 30-day window needs" in result.problems[0]
    with pytest.raises(CommandError, match="1 check"):
        call_command("explain_event_queries")


@postgres
def test_the_command_prints_every_check(year_of_events, capsys):
    call_command("explain_event_queries", "--without-seqscan")
    out = capsys.readouterr().out
    for check in CHECKS:
        assert check.name in out
    assert out.count(" ok") >= len(CHECKS)


# -- monitoring -----------------------------------------------------------------------------------


def test_the_health_figures_show_the_months_ready_and_the_default_partitions_rows(send):
    from cdp_site.operations_metrics import collect_figures, prometheus_text

    if connection.vendor != "postgresql":
        assert collect_figures()["storage"] == {"event_partitions_ahead": None, "event_default_partition_rows": None}
        assert "\ncdp_events_partitions_ahead " not in prometheus_text(collect_figures())  # no sample, only HELP
        return
    send(event(ids=[("email", "ada@example.com")], at="1999-05-01T10:00:00+00:00"))
    raw_events_process()
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {DEFAULT}")
    figures = collect_figures()
    assert figures["storage"] == {"event_partitions_ahead": 3, "event_default_partition_rows": 1}
    text = prometheus_text(figures)
    assert "cdp_events_partitions_ahead 3" in text and "cdp_events_default_partition_rows 1" in text

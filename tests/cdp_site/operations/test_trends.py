"""Snapshots of the operational figures and the series read from them."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cdp_site.operations_models import OperationsSnapshot
from cdp_site.operations_trends import (
    MAX_POINTS,
    METRICS,
    metric_series,
    operations_snapshot_capture,
    operations_snapshots_prune,
    slot_of,
    snapshots_in_range,
)
from profiles.models import RawEvent
from profiles.processing import raw_events_process
from profiles.sources import source_create

pytestmark = pytest.mark.django_db


def slot_start(moment: datetime) -> datetime:
    return datetime.fromtimestamp(slot_of(moment) * 300, tz=UTC)


def test_snapshots_hold_the_real_figures_and_give_exact_series(send, canonical_source):
    base = slot_start(timezone.now()) - timedelta(minutes=30)
    send()
    send()
    first = operations_snapshot_capture(now=base)
    raw_events_process()
    second = operations_snapshot_capture(now=base + timedelta(minutes=5))
    quarantined = send(broken=True)
    RawEvent.objects.filter(pk=quarantined.pk).update(status=RawEvent.QUARANTINED)
    send()
    third = operations_snapshot_capture(now=base + timedelta(minutes=10))
    assert [first.created, second.created, third.created] == [True, True, True]
    assert OperationsSnapshot.objects.count() == 3

    snapshots = snapshots_in_range(range_key="24h", now=base + timedelta(minutes=10))
    assert [at for at, _ in snapshots] == [base, base + timedelta(minutes=5), base + timedelta(minutes=10)]
    (pending,) = metric_series(METRICS["ingestion_pending"], snapshots)
    assert [value for _, value in pending.points] == [2.0, 0.0, 1.0]
    assert (pending.last, pending.minimum, pending.maximum) == (1.0, 0.0, 2.0)
    (errors,) = metric_series(METRICS["ingestion_error_ratio"], snapshots)
    # Four raw events received in the last hour at the third snapshot, one of them quarantined.
    assert [value for _, value in errors.points] == [0.0, 0.0, 0.25]
    (quarantine,) = metric_series(METRICS["ingestion_quarantine_ratio"], snapshots)
    assert quarantine.last == 0.25

    (freshness,) = metric_series(METRICS["source_freshness_breached"], snapshots)
    assert freshness.label == canonical_source.slug
    assert [value for _, value in freshness.points] == [0.0, 0.0, 0.0]


def test_one_snapshot_per_slot(send):
    now = slot_start(timezone.now()) + timedelta(seconds=10)
    first = operations_snapshot_capture(now=now)
    again = operations_snapshot_capture(now=now + timedelta(seconds=100))  # same 5-minute slot
    assert first.created and not again.created
    assert again.snapshot.pk == first.snapshot.pk
    assert OperationsSnapshot.objects.count() == 1
    assert operations_snapshot_capture(now=now + timedelta(minutes=5)).created
    assert OperationsSnapshot.objects.count() == 2


def test_labelled_series_per_source_with_gaps(send, canonical_source):
    base = slot_start(timezone.now()) - timedelta(minutes=20)
    operations_snapshot_capture(now=base)
    pos, _ = source_create(name="POS", kind="csv", freshness_sla_minutes=1)
    type(pos).objects.filter(pk=pos.pk).update(created_at=base - timedelta(hours=1))  # never sent anything
    operations_snapshot_capture(now=base + timedelta(minutes=5))
    snapshots = snapshots_in_range(range_key="24h", now=base + timedelta(minutes=5))
    series = {item.label: item for item in metric_series(METRICS["source_freshness_breached"], snapshots)}
    assert sorted(series) == sorted([canonical_source.slug, pos.slug])
    # POS did not exist at the first snapshot: a gap, not a zero.
    assert [value for _, value in series[pos.slug].points] == [None, 1.0]
    only = metric_series(METRICS["source_freshness_breached"], snapshots, label=pos.slug)
    assert [item.label for item in only] == [pos.slug]


def test_series_are_downsampled_in_sql_to_at_most_max_points():
    now = slot_start(timezone.now())
    first_slot = slot_of(now) - 1999
    OperationsSnapshot.objects.bulk_create(
        OperationsSnapshot(
            slot=slot,
            captured_at=datetime.fromtimestamp(slot * 300, tz=UTC),
            figures={"worker": {"queue_depth": slot - first_slot}},
        )
        for slot in range(first_slot, first_slot + 2000)
    )
    with CaptureQueriesContext(connection) as queries:
        snapshots = snapshots_in_range(range_key="7d", now=now)
    assert len(queries) == 2  # a count, then the rows of every step-th slot
    (series,) = metric_series(METRICS["worker_queue_depth"], snapshots)
    step = 7  # ceil(2000 / 300)
    expected = [float(slot - first_slot) for slot in range(first_slot, first_slot + 2000) if slot % step == 0]
    assert [value for _, value in series.points] == expected
    assert len(series.points) <= MAX_POINTS
    # 24 hours: 288 slots, every one of them (289 with both ends).
    assert len(snapshots_in_range(range_key="24h", now=now)) == 289


def test_prune_keeps_thirty_days():
    now = slot_start(timezone.now())
    for days in (31, 29):
        at = now - timedelta(days=days)
        OperationsSnapshot.objects.create(captured_at=at, slot=slot_of(at), figures={})
    assert operations_snapshots_prune(now=now) == 1
    assert list(OperationsSnapshot.objects.values_list("captured_at", flat=True)) == [now - timedelta(days=29)]


def test_older_snapshot_shapes_do_not_break_series():
    now = slot_start(timezone.now())
    OperationsSnapshot.objects.create(captured_at=now, slot=slot_of(now), figures={"ingestion": "unexpected"})
    snapshots = snapshots_in_range(range_key="24h", now=now)
    for metric in METRICS.values():
        for series in metric_series(metric, snapshots):
            assert series.points == [(now, None)]

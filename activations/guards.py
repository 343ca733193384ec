"""Guards a sync can require before it sends: fresh sources, few low-confidence profiles, and a
clean last run. A failing guard pauses the run with the reason instead of sending."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, Q
from django.utils import timezone

from profiles.models import RawEvent, Source
from segments.models import SegmentMembership


def stale_sources(now=None) -> list[str]:
    """Active sources that have sent something, but nothing within their freshness SLA."""
    now = now or timezone.now()
    stale = []
    for source in Source.objects.filter(is_active=True).order_by("slug"):
        last = (
            RawEvent.objects.filter(source=source)
            .order_by("-received_at")
            .values_list("received_at", flat=True)
            .first()
        )
        if last is None:
            continue
        late = now - last
        if late > timedelta(minutes=source.freshness_sla_minutes):
            minutes = int(late.total_seconds() // 60)
            stale.append(f"{source.slug} (last event {minutes} min ago, SLA {source.freshness_sla_minutes} min)")
    return stale


def low_confidence_share(sync) -> tuple[float, int]:
    counts = SegmentMembership.objects.filter(segment_id=sync.segment_id, exited_at__isnull=True).aggregate(
        members=Count("id"), low=Count("id", filter=Q(profile__merge_confidence__lt=sync.min_merge_confidence))
    )
    members = counts["members"] or 0
    return ((counts["low"] or 0) / members if members else 0.0), members


def guard_failures(sync) -> list[str]:
    from activations.models import SyncRun

    failures = []
    if sync.guard_sources_fresh:
        stale = stale_sources()
        if stale:
            failures.append("sources outside their freshness SLA: " + ", ".join(stale))
    if sync.guard_max_low_confidence_share is not None:
        share, members = low_confidence_share(sync)
        if members and share > sync.guard_max_low_confidence_share:
            failures.append(
                f"{share:.1%} of members have merge confidence under {sync.min_merge_confidence:g} "
                f"(limit {sync.guard_max_low_confidence_share:.1%})"
            )
    if sync.guard_max_reconciliation_delta is not None:
        last = sync.runs.filter(is_dry_run=False, status=SyncRun.COMPLETED).order_by("-finished_at").first()
        if last is not None and last.reconciliation_delta > sync.guard_max_reconciliation_delta:
            failures.append(
                f"the last run (#{last.pk}) left {last.unapplied} of {last.planned} operations unapplied "
                f"({last.reconciliation_delta:.1%}, limit {sync.guard_max_reconciliation_delta:.1%})"
            )
    return failures

"""Demo activations, so a fresh `make run` shows a destination, a synced audience with a run and
its reconciliation. The destination is a CSV export under var/exports: nothing
leaves the machine."""

from __future__ import annotations

from django.conf import settings

from activations.destinations import destination_save
from activations.models import Destination, Sync
from activations.syncs import SyncBusy, SyncNotReady, sync_run_execute, sync_run_start
from segments.models import Segment

DESTINATION = dict(
    name="Warehouse CSV export",
    slug="warehouse-csv",
    kind=Destination.CSV,
    fields=[
        {"name": "profile_id", "source": "profile:id"},
        {"name": "email", "source": "identifier:email"},
        {"name": "city", "source": "trait:city"},
        {"name": "classes_attended", "source": "computed:classes_attended"},
        {"name": "lifetime_revenue", "source": "profile:lifetime_revenue"},
    ],
    idempotency_key="profile_id",
    operations=["upsert", "update", "remove", "delete"],
    consent_purpose="email_marketing",
    pii_mode="hashed",
    rate_limit_per_second=1000,
    batch_size=1000,
)


def demo_activations_create() -> list[str]:
    created = []
    destination = Destination.objects.filter(slug=DESTINATION["slug"]).first()
    if destination is None:
        destination = destination_save(**DESTINATION, settings={"directory": str(settings.VAR_DIR / "exports")})
        created.append(destination.slug)
    segment = Segment.objects.filter(slug="regulars", published_version__isnull=False).first()
    if segment is None:
        return created
    sync = Sync.objects.filter(slug="regulars-to-warehouse").first()
    if sync is None:
        sync = Sync.objects.create(
            name="Regulars to the warehouse",
            slug="regulars-to-warehouse",
            segment=segment,
            destination=destination,
            mode="mirror",
            schedule_minutes=60,
            guard_max_reconciliation_delta=0.05,
        )
        created.append(sync.slug)
        try:
            run = sync_run_start(sync=sync, triggered_by="demo_setup", enqueue=False)
        except (SyncBusy, SyncNotReady):
            pass
        else:
            sync_run_execute(run.pk)
    return created

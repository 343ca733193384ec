"""Consent capture channels and withdrawal propagation. Helpers shared by the modules below."""

from activations.syncs import sync_run_execute, sync_run_start


def run_sync(sync, **options):
    run = sync_run_start(sync=sync, triggered_by="test", enqueue=False, **options)
    return sync_run_execute(run.pk)


def synced(ingest, audience, webhook_destination, make_sync, server, *, mode="upsert", **destination):
    """Ana and Ben, both consenting to email marketing, synced to a webhook destination that needs it."""
    ana = ingest(email="ana@example.com", traits={"plan": "gold"}, consent={"email_marketing": True})
    ben = ingest(email="ben@example.com", traits={"plan": "gold"}, consent={"email_marketing": True})
    sync = make_sync(audience(), webhook_destination(server.url, **destination), mode=mode)
    run = run_sync(sync)
    assert run.applied == 2, run.error
    return sync, ana, ben

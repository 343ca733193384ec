"""Removals and deletions sent at once, outside sync runs."""

import pytest

from activations.direct import forget_in_destinations, remove_for_withdrawal
from activations.local_destination import LocalDestination
from activations.models import SyncRecord, SyncState
from activations.syncs import sync_run_execute, sync_run_start
from tests.activations.conftest import bodies

pytestmark = pytest.mark.django_db


def synced(ingest, audience, webhook_destination, make_sync, server, **destination):
    ana = ingest(email="ana@example.com", traits={"plan": "gold"}, consent={"email_marketing": True})
    ingest(email="ben@example.com", traits={"plan": "gold"}, consent={"email_marketing": True})
    sync = make_sync(audience(), webhook_destination(server.url, **destination), mode="upsert")
    run = sync_run_start(sync=sync, triggered_by="test", enqueue=False)
    assert sync_run_execute(run.pk).applied == 2
    return sync, ana


def test_forget_sends_a_delete_and_keeps_no_copy(ingest, audience, webhook_destination, make_sync):
    with LocalDestination() as server:
        sync, ana = synced(ingest, audience, webhook_destination, make_sync, server)
        [outcome] = forget_in_destinations(profile_ids=[ana])
        assert outcome.ok and outcome.operation == "delete"
        last = bodies(server)[-1]
        assert last["type"] == "profile.deleted" and last["data"] == {"key": "ana@example.com"}
        state = SyncState.objects.get(sync=sync, profile_id=ana)
        assert (state.key, state.fingerprint, state.skip_reason) == ("", "", "tombstone")
        assert all(r.key == "" and r.payload == "" for r in SyncRecord.objects.filter(profile_id=ana))
        # Ben is untouched.
        assert SyncState.objects.exclude(profile_id=ana).get(sync=sync).fingerprint


def test_forget_falls_back_to_removal_and_reports_destinations_that_cannot(
    ingest, audience, webhook_destination, make_sync
):
    with LocalDestination() as server:
        sync, ana = synced(
            ingest, audience, webhook_destination, make_sync, server, operations=["upsert", "remove", "message"]
        )
        [outcome] = forget_in_destinations(profile_ids=[ana])
        assert outcome.ok and outcome.operation == "remove"
        assert bodies(server)[-1]["type"] == "profile.removed"


def test_withdrawal_removes_only_where_the_purpose_is_needed(ingest, audience, webhook_destination, make_sync):
    with LocalDestination() as server:
        sync, ana = synced(ingest, audience, webhook_destination, make_sync, server)
        assert remove_for_withdrawal(profile_id=ana, purpose="sms_marketing") == []
        [outcome] = remove_for_withdrawal(profile_id=ana, purpose="email_marketing")
        assert outcome.ok and outcome.applied_at is not None
        assert bodies(server)[-1]["type"] == "profile.removed"
        state = SyncState.objects.get(sync=sync, profile_id=ana)
        assert (state.fingerprint, state.skip_reason) == ("", "consent")


def test_forget_sends_in_destination_order_whatever_the_sync_order(ingest, audience, webhook_destination, make_sync):
    # Send slots lock the destination row until the deletion step commits: one order, no deadlock.
    with LocalDestination() as first_server, LocalDestination() as second_server:
        ana = ingest(email="ana@example.com", traits={"plan": "gold"}, consent={"email_marketing": True})
        first = webhook_destination(first_server.url, name="First")
        second = webhook_destination(second_server.url, name="Second")
        for destination in (second, first):  # the sync to the later destination is created first
            sync = make_sync(audience(), destination, mode="upsert")
            assert sync_run_execute(sync_run_start(sync=sync, triggered_by="test", enqueue=False).pk).applied == 1

        outcomes = forget_in_destinations(profile_ids=[ana])

        assert first.pk < second.pk
        assert [outcome.destination for outcome in outcomes] == [first.slug, second.slug]
        assert all(outcome.ok for outcome in outcomes)

"""A pilot built through the real pipeline: people ingested, an audience, a webhook destination on a
local server, real sync runs; plus the sign-offs and thresholds the gates read."""

import itertools
from types import SimpleNamespace

import pytest

from activations.destinations import destination_test
from activations.local_destination import LocalDestination
from activations.syncs import sync_run_execute, sync_run_start
from cdp_site.models import PilotSignoff
from cdp_site.pilot_gates import pilot_signoff_record
from identity.metrics import identity_metrics_snapshot
from profiles.processing import raw_events_process
from tests.activations import conftest as activations_fixtures
from tests.profiles.processing.conftest import event

audience = activations_fixtures.audience
ingest = activations_fixtures.ingest
ingest_live = activations_fixtures.ingest_live
make_sync = activations_fixtures.make_sync
webhook_destination = activations_fixtures.webhook_destination

_ids = itertools.count(1)


@pytest.fixture
def server():
    with LocalDestination() as server:
        yield server


def run_sync(sync, **options):
    run = sync_run_start(sync=sync, triggered_by="test", enqueue=False, **options)
    return sync_run_execute(run.pk)


@pytest.fixture
def person(send):
    """person(email=..., traits=..., consent=..., verified=True, event_type=..., properties=...) -> raw event.
    Through the real processing pipeline; `verified` marks the identifiers verified (identity coverage)."""

    def make(*, email, phone=None, traits=None, consent=None, verified=True, event_type="profile.identified", **fields):
        ids = [("email", email)] + ([("phone", phone)] if phone else [])
        raw = send(
            event(
                event_type,
                at=fields.pop("at", None) or "2026-01-01T10:00:00+00:00",
                ids=ids,
                traits=traits or {},
                consent=list((consent or {}).items()),
                verified_ids=verified,
                **fields,
            )
        )
        raw_events_process()
        raw.refresh_from_db()
        assert raw.status == "processed", raw.error
        return raw

    return make


def sign(gate, *, decision=PilotSignoff.SIGNED, actor="user:pia"):
    return pilot_signoff_record(
        gate=gate, decision=decision, document_url=f"https://wiki.example.org/{gate}", note="", actor=actor
    )


@pytest.fixture
def ready_pilot(make_user, canonical_source, person, audience, webhook_destination, make_sync, server):
    """Every gate passes: owned source, destination and sync; contracts for every event type; verified
    identities; a tested destination with a clean real sync run; purposes and both sign-offs."""
    owner = make_user("integration_engineer", username="olive")
    canonical_source.owner = owner
    canonical_source.save(update_fields=["owner"])
    for name in ("ana", "ben"):
        person(
            email=f"{name}@example.com",
            traits={"plan": "gold", "first_name": name.title()},
            consent={"email_marketing": True},
        )
    identity_metrics_snapshot()
    destination = webhook_destination(server.url, owner=owner, name="Hook", slug="hook")
    ok, message = destination_test(destination, actor="test")
    assert ok, message
    segment = audience(slug="gold")
    sync = make_sync(segment, destination, owner=owner, slug="gold-hook", mode="mirror")
    run = run_sync(sync)
    assert (run.status, run.applied, run.failed) == ("completed", 2, 0), run.error
    sign(PilotSignoff.SUPPRESSION)
    sign(PilotSignoff.ROLLBACK)
    destination.refresh_from_db()
    return SimpleNamespace(
        owner=owner, source=canonical_source, destination=destination, segment=segment, sync=sync, run=run
    )

"""People ingested through the real pipeline, an audience, and destinations pointed at local servers."""

import itertools
import json

import pytest
from django.utils import timezone

from activations.destinations import destination_save
from activations.models import Sync
from profiles.processing import raw_events_process
from segments.membership import segment_membership_refresh
from segments.services import segment_create

_ids = itertools.count(1)
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def ingest_live(ingest, django_capture_on_commit_callbacks):
    """ingest, running what the processing worker runs after its commit (segments, triggers)."""

    def run(**kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return ingest(**kwargs)

    return run


@pytest.fixture
def ingest(send):
    """ingest(email=..., traits={...}, consent={"email_marketing": True}, phone=...) -> profile id."""

    def ingest(
        *,
        email=None,
        phone=None,
        customer=None,
        traits=None,
        consent=None,
        event_type="profile.identified",
        properties=None,
        at=None,
    ):
        ids = [(kind, value) for kind, value in (("email", email), ("phone", phone), ("user_id", customer)) if value]
        event = {
            "type": event_type,
            "at": at or timezone.now().isoformat(),
            "ids": ids,
            "traits": traits or {},
            "consent": list((consent or {}).items()),
            "properties": properties or {},
        }
        raw = send(event)
        raw_events_process()
        raw.refresh_from_db()
        assert raw.status == "processed", raw.error
        return raw.events.get().profile_id

    return ingest


@pytest.fixture
def audience(db):
    """audience(definition, holdout_percent=0, suppression=False) -> published segment with memberships."""

    def make(definition=None, *, holdout_percent=0, suppression=False, slug=None):
        segment = segment_create(
            slug=slug or f"audience-{next(_ids)}",
            name="Audience",
            definition=definition or {"all": [{"trait": "plan", "op": "eq", "value": "gold"}]},
            note="test",
            author="test",
            holdout_percent=holdout_percent,
            is_suppression=suppression,
        )
        segment_membership_refresh(segment=segment)
        return segment

    return make


@pytest.fixture
def webhook_destination(db):
    def make(url, **overrides):
        values = {
            "name": "Webhook",
            "slug": f"webhook-{next(_ids)}",
            "kind": "webhook",
            "base_url": url,
            "fields": [
                {"name": "email", "source": "identifier:email"},
                {"name": "plan", "source": "trait:plan"},
                {"name": "first_name", "source": "trait:first_name"},
                {"name": "ltv", "source": "profile:lifetime_revenue"},
            ],
            "idempotency_key": "email",
            "operations": ["upsert", "update", "remove", "delete", "message"],
            "consent_purpose": "email_marketing",
            "pii_mode": "cleartext",
            "rate_limit_per_second": 1000,
            "batch_size": 1,
            "max_attempts": 3,
            "timeout_seconds": 2,
        }
        values.update(overrides)
        return destination_save(secrets={"signing_secret": WEBHOOK_SECRET}, **values)

    return make


@pytest.fixture
def make_sync(db):
    def make(segment, destination, **overrides):
        values = {
            "name": "Sync",
            "slug": f"sync-{next(_ids)}",
            "segment": segment,
            "destination": destination,
            "mode": "upsert",
        }
        values.update(overrides)
        return Sync.objects.create(**values)

    return make


def bodies(server):
    return [json.loads(request.body) for request in server.accepted()]

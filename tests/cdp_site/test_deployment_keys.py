"""A machine whose blind-index or tombstone key differs from the one the data was written with
refuses to process events and to run privacy requests, and `check --database` says which key."""

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from cdp_site import deployment_keys
from cdp_site.deployment_keys import DeploymentKeyMismatch, deployment_keys_compare, deployment_keys_verify, fingerprint
from cdp_site.models import DeploymentKey
from consent.models import PrivacyRequest
from profiles.models import RawEvent
from profiles.processing import raw_events_process
from tests.profiles.processing.conftest import event

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def unverified(monkeypatch):
    monkeypatch.setattr(deployment_keys, "_verified", False)


def test_the_migration_recorded_this_machines_keys_without_revealing_them(settings):
    recorded = dict(DeploymentKey.objects.values_list("name", "fingerprint"))
    assert set(recorded) == {"PII_BLIND_INDEX_KEY", "TOMBSTONE_KEY"}
    assert recorded["TOMBSTONE_KEY"] == fingerprint("TOMBSTONE_KEY", settings.TOMBSTONE_KEY)
    assert settings.TOMBSTONE_KEY not in recorded["TOMBSTONE_KEY"]
    assert deployment_keys_compare() == []
    call_command("check", "--database", "default")


def test_another_blind_index_key_refuses_processing_and_leaves_events_pending(settings, send):
    raw = send(event(ids=[("email", "ada@example.com")]))
    settings.PII_BLIND_INDEX_KEY = "a-key-another-machine-generated"

    with pytest.raises(DeploymentKeyMismatch, match="PII_BLIND_INDEX_KEY on this machine differ"):
        raw_events_process()
    assert RawEvent.objects.get(pk=raw.pk).status == RawEvent.PENDING
    with pytest.raises(SystemCheckError, match="cdp_site.E001"):
        call_command("check", "--database", "default")


def test_another_tombstone_key_refuses_a_deletion(settings):
    from consent.requests import privacy_request_create, privacy_request_run

    request = privacy_request_create(
        kind=PrivacyRequest.DELETION,
        regulation="gdpr",
        identifiers="email:ada@example.com",
        actor="test",
        enqueue=False,
    )
    settings.TOMBSTONE_KEY = "another-tombstone-key"
    with pytest.raises(DeploymentKeyMismatch, match="TOMBSTONE_KEY"):
        privacy_request_run(request_id=request.pk)
    assert PrivacyRequest.objects.get(pk=request.pk).status == PrivacyRequest.RECEIVED


def test_the_first_process_records_missing_keys_and_a_match_is_remembered(settings, django_assert_num_queries):
    DeploymentKey.objects.all().delete()
    deployment_keys_verify()
    assert DeploymentKey.objects.count() == 2
    with django_assert_num_queries(0):
        deployment_keys_verify()

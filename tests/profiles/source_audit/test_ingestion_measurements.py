"""What ingestion keeps for the audit: redeliveries counted at the door, and every source that sent
an identifier (not only the first one)."""

import pytest
from django.db import connection
from django.utils import timezone

from identity.models import Identifier
from identity.selectors import identifier_find
from profiles.ingest import IncomingEvent, raw_events_store
from profiles.models import RawEvent, SourceDeliveryCount, SourceIdentifier
from profiles.processing import raw_events_process
from profiles.sources import source_create
from tests.profiles.processing.conftest import event

pytestmark = pytest.mark.django_db


def test_a_tracking_message_sent_twice_is_stored_once_and_counted_as_one_redelivery(audit_world):
    web = audit_world["web"]
    assert RawEvent.objects.filter(source=web, external_id="web-1").count() == 1
    day = timezone.now().date()
    assert list(SourceDeliveryCount.objects.values_list("source_id", "day", "duplicates")) == [(web.pk, day, 1)]


def test_redeliveries_accumulate_per_source_and_day_and_first_deliveries_write_nothing(db):
    source, _ = source_create(name="Backfill", kind="csv")
    received_at = timezone.now()
    batch = [IncomingEvent(external_id=f"row-{n}", payload={"n": n}) for n in range(3)]

    raw_events_store(source=source, events=batch, received_at=received_at)
    assert SourceDeliveryCount.objects.count() == 0  # nothing repeated, nothing written

    raw_events_store(source=source, events=batch[:2], received_at=received_at)
    raw_events_store(source=source, events=[batch[0], batch[0], IncomingEvent("row-9", {})], received_at=received_at)
    assert RawEvent.objects.filter(source=source).count() == 4
    assert SourceDeliveryCount.objects.get(source=source).duplicates == 4


def test_processing_records_every_source_that_sent_an_identifier_with_its_type(canonical_source, send):
    other, _ = source_create(name="Second", kind="csv")
    send(event("page.viewed", ids=[("email", "ada@example.com"), ("user_id", "ada")]))
    send(event("page.viewed", ids=[("email", "ADA@example.com ")]), source=other)
    send(event("page.viewed", ids=[("email", "ada@example.com")]))  # already known for this source
    raw_events_process()

    email = identifier_find(type_slug="email", raw_value="ada@example.com")
    user_id = identifier_find(type_slug="user_id", raw_value="ada")
    assert email.source_id == canonical_source.pk  # the first source only
    rows = set(SourceIdentifier.objects.values_list("source_id", "identifier_id", "identifier_type_id"))
    assert rows == {
        (canonical_source.pk, email.pk, email.identifier_type_id),
        (canonical_source.pk, user_id.pk, user_id.identifier_type_id),
        (other.pk, email.pk, email.identifier_type_id),
    }


def test_deleting_an_identifier_deletes_which_sources_sent_it(canonical_source, send):
    send(event("page.viewed", ids=[("user_id", "gone")]))
    raw_events_process()
    identifier = identifier_find(type_slug="user_id", raw_value="gone")
    assert SourceIdentifier.objects.filter(identifier=identifier).count() == 1
    identifier.delete()
    assert SourceIdentifier.objects.count() == 0


def test_the_migration_backfills_from_first_sources_and_event_identifiers(canonical_source, send):
    from importlib import import_module

    other, _ = source_create(name="Second", kind="csv")
    send(event("page.viewed", ids=[("user_id", "u-1"), ("email", "u1@example.com")]))
    send(event("page.viewed", ids=[("user_id", "u-1")]), source=other)
    raw_events_process()
    expected = set(SourceIdentifier.objects.values_list("source_id", "identifier_id", "identifier_type_id"))
    SourceIdentifier.objects.all().delete()

    class Editor:
        def execute(self, sql):
            with connection.cursor() as cursor:
                cursor.execute(sql)

    migration = import_module("profiles.migrations.0004_source_audit")
    migration.backfill(None, Editor())
    migration.backfill(None, Editor())  # safe to run twice
    user_id = Identifier.objects.get(identifier_type__slug="user_id")
    email = Identifier.objects.get(identifier_type__slug="email")
    # user_id: its first source and the source of the event it was the primary identifier of;
    # email: its first source (it was never an event's primary identifier).
    assert set(SourceIdentifier.objects.values_list("source_id", "identifier_id", "identifier_type_id")) == expected
    assert expected == {
        (canonical_source.pk, user_id.pk, user_id.identifier_type_id),
        (canonical_source.pk, email.pk, email.identifier_type_id),
        (other.pk, user_id.pk, user_id.identifier_type_id),
    }

"""Consent records and the audit log are append-only, in the ORM and (PostgreSQL) in the database."""

import pytest
from django.db import IntegrityError, InternalError, ProgrammingError, connection, transaction
from django.utils import timezone

from cdp_site.audit import audit_record
from cdp_site.models import AuditEntry
from consent.guards import privacy_purge
from consent.models import ConsentRecord
from profiles.models import Profile

pytestmark = pytest.mark.django_db
DATABASE_ERRORS = (ProgrammingError, InternalError, IntegrityError)


def consent_record():
    now = timezone.now()
    profile = Profile.objects.create(created_at=now, updated_at=now)
    return ConsentRecord.objects.create(profile=profile, purpose="email_marketing", is_granted=True, captured_at=now)


def test_the_orm_refuses_changes():
    record = consent_record()
    with pytest.raises(ValueError, match="append-only"):
        record.save()
    with pytest.raises(ValueError, match="append-only"):
        record.delete()
    entry = audit_record(actor="user:ana", action="pii.reveal", target=record.profile, summary="revealed identifiers")
    with pytest.raises(ValueError, match="append-only"):
        entry.save()
    with pytest.raises(ValueError, match="append-only"):
        entry.delete()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the database guard is PostgreSQL's")
def test_postgresql_refuses_what_the_orm_would_bypass():
    record = consent_record()
    for attempt in (
        lambda: ConsentRecord.objects.filter(pk=record.pk).update(is_granted=False),
        lambda: ConsentRecord.objects.filter(pk=record.pk).delete(),
    ):
        with pytest.raises(DATABASE_ERRORS, match="append-only"), transaction.atomic():
            attempt()
    # Merges move a record to another profile: allowed.
    other = Profile.objects.create(created_at=timezone.now(), updated_at=timezone.now())
    ConsentRecord.objects.filter(pk=record.pk).update(profile=other)
    entry = audit_record(actor="user:ana", action="merge.unmerge")
    with pytest.raises(DATABASE_ERRORS, match="append-only"), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).update(action="nothing")
    with pytest.raises(DATABASE_ERRORS, match="append-only"), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).delete()
    with privacy_purge():
        ConsentRecord.objects.filter(pk=record.pk).delete()
    assert not ConsentRecord.objects.filter(pk=record.pk).exists()

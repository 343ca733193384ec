"""Deletion and access requests, and the step-by-step log that proves what each one did.

The person's identifiers are held encrypted only while a request needs them: a completed deletion
keeps their tombstone hashes and types, never a value. Steps record times, outcomes and counts,
never PII.
"""

import json

from django.conf import settings
from django.db import models
from django.utils import timezone

from consent.fields import EncryptedTextField

__all__ = ["PrivacyRequest", "PrivacyRequestStep"]


class PrivacyRequest(models.Model):
    DELETION, ACCESS = "deletion", "access"
    KINDS = ((DELETION, "Deletion (erasure)"), (ACCESS, "Access (export)"))
    GDPR, CCPA = "gdpr", "ccpa"
    REGULATIONS = ((GDPR, "GDPR"), (CCPA, "CCPA"))
    RECEIVED, IN_PROGRESS, COMPLETED, FAILED = "received", "in_progress", "completed", "failed"
    STATUSES = ((RECEIVED, "Received"), (IN_PROGRESS, "In progress"), (COMPLETED, "Completed"), (FAILED, "Failed"))

    kind = models.CharField(max_length=16, choices=KINDS)
    regulation = models.CharField(max_length=8, choices=REGULATIONS)
    status = models.CharField(max_length=16, choices=STATUSES, default=RECEIVED)
    received_at = models.DateTimeField(help_text="When the person's request reached us: deadlines count from it.")
    due_at = models.DateTimeField(help_text="GDPR: one calendar month; CCPA: 45 days.")
    extended_until = models.DateTimeField(null=True, blank=True, help_text="The one extension allowed, if taken.")
    extension_reason = models.CharField(max_length=500, blank=True)
    extension_notified_at = models.DateTimeField(
        null=True, blank=True, help_text="When the person was told of the extension (within the first period)."
    )
    receipt_due_at = models.DateTimeField(
        null=True, blank=True, help_text="CCPA: confirm receipt within 10 business days."
    )
    receipt_confirmed_at = models.DateTimeField(null=True, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # JSON [{"type": slug, "value": normalised}]: encrypted, and blanked once a deletion completes.
    subject = EncryptedTextField(blank=True, help_text="The identifiers the request names (encrypted).")
    # JSON of every identifier (and name) of the profiles found, for the verify step; blanked with subject.
    found_identifiers = EncryptedTextField(blank=True)
    # [{"type": slug, "hash": tombstone hash}]: what stays of the subject after a deletion.
    subject_hashes = models.JSONField(default=list, blank=True)
    profiles_found = models.JSONField(default=list, blank=True, help_text="Ids of every profile the request reached.")
    error = models.TextField(blank=True, help_text="Which step failed, and why (never PII).")
    archive_path = models.CharField(max_length=500, blank=True, help_text="Access requests: the built archive.")
    archive_sha256 = models.CharField(max_length=64, blank=True)
    archive_bytes = models.PositiveBigIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["status", "due_at"])]

    def __str__(self):
        return f"{self.get_kind_display()} request {self.pk}"

    # -- the subject, while it is held ---------------------------------------------------------

    @property
    def subject_identifiers(self) -> list[dict]:
        return json.loads(self.subject) if self.subject else []

    @property
    def found_values(self) -> list[dict]:
        return json.loads(self.found_identifiers) if self.found_identifiers else []

    @property
    def subject_types(self) -> list[str]:
        if self.subject:
            return [item["type"] for item in self.subject_identifiers]
        return [item["type"] for item in self.subject_hashes]

    # -- deadlines ------------------------------------------------------------------------------

    @property
    def effective_due_at(self):
        return self.extended_until or self.due_at

    @property
    def is_open(self) -> bool:
        return self.status != self.COMPLETED

    def is_overdue(self, now=None) -> bool:
        return self.is_open and (now or timezone.now()) > self.effective_due_at

    def is_receipt_overdue(self, now=None) -> bool:
        return (
            self.receipt_due_at is not None
            and self.receipt_confirmed_at is None
            and (now or timezone.now()) > self.receipt_due_at
        )

    @property
    def overdue(self) -> bool:
        return self.is_overdue()

    @property
    def receipt_overdue(self) -> bool:
        return self.is_receipt_overdue()


class PrivacyRequestStep(models.Model):
    """One attempt at one step of a request: when it ran, how it ended, and counts (no PII)."""

    RUNNING, OK, FAILED, SKIPPED = "running", "ok", "failed", "skipped"
    OUTCOMES = ((RUNNING, "Running"), (OK, "OK"), (FAILED, "Failed"), (SKIPPED, "Skipped"))

    request = models.ForeignKey(PrivacyRequest, on_delete=models.CASCADE, related_name="steps")
    name = models.CharField(max_length=32)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=OUTCOMES, default=RUNNING)
    detail = models.JSONField(default=dict, blank=True, help_text="Counts and destination outcomes, never PII.")

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["request", "name"])]

    def __str__(self):
        return f"{self.name}: {self.outcome}"

    @property
    def seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

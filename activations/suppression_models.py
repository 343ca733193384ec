"""Proof that a consent withdrawal reached every destination that needs the purpose.

One row per (withdrawal, destination, sync holding the person): what was sent, when the destination
accepted it, and how long that took after we learned of the withdrawal. A destination that needs the
purpose but held nothing gets one `not_needed` row: syncs and triggers check consent at send time,
so the suppression is in force there without sending anything. A row with no destination marks a
withdrawal that needed no work at all (no destination needs the purpose, a repeat of an earlier
withdrawal, a newer grant in force), so the sweeper does not pick it up again.

Rows are the durable state of propagation: `pending` rows whose claim expired and `failed` rows
whose next attempt is due are retried by the sweeper; a task is only a nudge.
"""

from django.db import models
from django.db.models import Q

from consent.domain import PURPOSES

__all__ = ["SuppressionApplied"]


class SuppressionApplied(models.Model):
    PENDING, APPLIED, FAILED, NOT_NEEDED, SUPERSEDED = "pending", "applied", "failed", "not_needed", "superseded"
    STATUSES = (
        (PENDING, "Pending"),
        (APPLIED, "Applied"),
        (FAILED, "Failed"),
        (NOT_NEEDED, "Not needed (not held there)"),
        (SUPERSEDED, "Superseded by a later grant"),
    )

    consent_record = models.ForeignKey("consent.ConsentRecord", on_delete=models.PROTECT, related_name="suppressions")
    profile_id = models.BigIntegerField(db_index=True, help_text="Not a foreign key: the proof outlives a purge.")
    purpose = models.CharField(max_length=32, choices=PURPOSES)
    destination = models.ForeignKey(
        "activations.Destination", null=True, blank=True, on_delete=models.PROTECT, related_name="suppressions"
    )
    sync = models.ForeignKey(
        "activations.Sync", null=True, blank=True, on_delete=models.PROTECT, related_name="suppressions"
    )
    operation = models.CharField(max_length=16, blank=True, help_text="remove, delete, or empty when nothing was sent.")
    status = models.CharField(max_length=16, choices=STATUSES, default=PENDING)
    requested_at = models.DateTimeField(help_text="When we learned of the withdrawal (the record's recorded_at).")
    applied_at = models.DateTimeField(null=True, blank=True, help_text="When the suppression was in force there.")
    latency_ms = models.FloatField(null=True, blank=True, help_text="applied_at − requested_at.")
    captured_latency_ms = models.FloatField(
        null=True, blank=True, help_text="applied_at − the withdrawal's captured_at (includes the sender's delay)."
    )
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Propagation rounds (each retries inline).")
    next_attempt_at = models.DateTimeField(null=True, blank=True, help_text="Failed: when the sweeper retries.")
    claimed_until = models.DateTimeField(null=True, blank=True, help_text="Pending: a worker is on it until then.")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    message = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["consent_record", "destination", "sync"],
                condition=Q(sync__isnull=False),
                name="suppression_unique_sync",
            ),
            models.UniqueConstraint(
                fields=["consent_record", "destination"],
                condition=Q(sync__isnull=True, destination__isnull=False),
                name="suppression_unique_destination",
            ),
            models.UniqueConstraint(
                fields=["consent_record"], condition=Q(destination__isnull=True), name="suppression_unique_marker"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"]),
            models.Index(fields=["status", "requested_at"]),
            models.Index(fields=["destination", "requested_at"]),
        ]

    def __str__(self):
        where = self.destination_id and f"destination {self.destination_id}" or "no destination"
        return f"withdrawal {self.consent_record_id} → {where} ({self.status})"

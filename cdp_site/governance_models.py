"""Data governance: retention policies with the log of what they purged, and profile health checks.

Imported into cdp_site.models, so these are cdp_site models (cdp_site.view_retentionpolicy, ...).
"""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

__all__ = ["ProfileHealthRun", "PurgeRun", "RetentionPolicy"]

MAX_KEEP_DAYS = 36500


class RetentionPolicy(models.Model):
    """How long one class of data is kept. The scheduled retention task applies every active policy."""

    RAW_EVENTS, EVENTS, QUARANTINED = "raw_events", "events", "quarantined"
    DATA_CLASSES = (
        (RAW_EVENTS, "Raw event payloads (processed)"),
        (EVENTS, "Events (timeline)"),
        (QUARANTINED, "Quarantined and failed payloads"),
    )
    DESCRIPTIONS = {
        RAW_EVENTS: (
            "Payload and headers of processed (and dropped) raw events received before the cutoff are blanked. "
            "The row stays, so a re-sent event is still recognised as a duplicate, and so do the events, "
            "identifiers, traits and consent records derived from it."
        ),
        EVENTS: (
            "Timeline events that occurred before the cutoff are deleted. Profile traits, lifetime revenue and "
            "consent records derived from them stay; segments whose conditions have no time window stop seeing "
            "the deleted events."
        ),
        QUARANTINED: (
            "Payload and headers of quarantined and failed raw events received before the cutoff are blanked: "
            "they can no longer be replayed, so fix contracts and mappers within this period."
        ),
    }

    data_class = models.CharField(max_length=32, choices=DATA_CLASSES, unique=True)
    keep_days = models.PositiveIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(MAX_KEEP_DAYS)],
        help_text="Data older than this many days is purged.",
    )
    is_active = models.BooleanField(default=True, help_text="Off: this class is kept indefinitely.")
    updated_by = models.CharField(max_length=150, blank=True, help_text="user:<name>, or the command or migration.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["data_class"]
        verbose_name_plural = "retention policies"
        constraints = [
            models.CheckConstraint(
                condition=Q(keep_days__gte=1, keep_days__lte=MAX_KEEP_DAYS), name="retention_keep_days_range"
            )
        ]

    def __str__(self):
        return f"{self.get_data_class_display()}: {self.keep_days} days"

    @property
    def description(self) -> str:
        return self.DESCRIPTIONS.get(self.data_class, "")


class PurgeRun(models.Model):
    """One application of the retention policies: what each data class lost, and up to when."""

    RUNNING, COMPLETED, PARTIAL, FAILED = "running", "completed", "partial", "failed"
    STATUSES = (
        (RUNNING, "Running (or interrupted)"),
        (COMPLETED, "Completed"),
        (PARTIAL, "Partial: time budget reached, the next run continues"),
        (FAILED, "Failed"),
    )

    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    triggered_by = models.CharField(max_length=150, help_text="schedule, command, or user:<name>.")
    status = models.CharField(max_length=16, choices=STATUSES, default=RUNNING)
    counts = models.JSONField(default=dict, blank=True, help_text="Per data class: rows purged.")
    cutoffs = models.JSONField(default=dict, blank=True, help_text="Per data class: the cutoff applied (ISO 8601).")
    keep_days = models.JSONField(default=dict, blank=True, help_text="Per data class: the policy in force.")
    batches = models.PositiveIntegerField(default=0, help_text="Transactions committed.")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self):
        return f"Purge run {self.pk} ({self.status})"

    @property
    def total(self) -> int:
        return sum(int(value) for value in (self.counts or {}).values())


class ProfileHealthRun(models.Model):
    """One evaluation of the profile health rules: how many profiles break each, and a few examples."""

    ran_at = models.DateTimeField(db_index=True)
    duration_ms = models.FloatField(default=0)
    triggered_by = models.CharField(max_length=150, help_text="schedule, command, or user:<name>.")
    counts = models.JSONField(default=dict, blank=True, help_text="Per rule: profiles breaking it.")
    examples = models.JSONField(default=dict, blank=True, help_text="Per rule: up to 20 profile ids (never PII).")

    class Meta:
        ordering = ["-ran_at", "-id"]

    def __str__(self):
        return f"Profile health {self.ran_at:%Y-%m-%d %H:%M}"

    @property
    def total(self) -> int:
        return sum(int(value) for value in (self.counts or {}).values())

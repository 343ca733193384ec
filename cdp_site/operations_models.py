"""The health dashboard's history and its alerts: snapshots of the operational figures, alert rules
over the series they hold, and the alerts those rules raised.

Imported into cdp_site.models, so these are cdp_site models (cdp_site.view_alertrule, ...).
"""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from consent.fields import EncryptedTextField

__all__ = ["Alert", "AlertRule", "OperationsSnapshot"]

SNAPSHOT_SLOT_SECONDS = 300  # one snapshot per 5-minute slot
MAX_CONSECUTIVE = 288  # a day of snapshots


class OperationsSnapshot(models.Model):
    """collect_figures() at one moment. `slot` (Unix seconds // 300) is unique: a task that runs twice
    in the same five minutes stores one snapshot, and charts downsample on it (`slot % step = 0`)."""

    captured_at = models.DateTimeField(db_index=True)
    slot = models.BigIntegerField(unique=True, help_text="Unix time // 300: the 5-minute slot.")
    figures = models.JSONField(default=dict)
    duration_ms = models.PositiveIntegerField(default=0, help_text="How long collecting the figures took.")

    class Meta:
        ordering = ["-captured_at", "-id"]
        get_latest_by = "captured_at"

    def __str__(self):
        return f"Operations snapshot {self.captured_at:%Y-%m-%d %H:%M}"


class AlertRule(models.Model):
    """A threshold on one series of the catalogue (cdp_site.operations_trends.METRICS): an alert opens
    when the condition holds in the last `consecutive` snapshots and resolves when it stops holding."""

    ABOVE, BELOW = "above", "below"
    COMPARISONS = ((ABOVE, "above"), (BELOW, "below"))

    name = models.CharField(max_length=100)
    metric = models.CharField(max_length=64, help_text="A key of the metric catalogue.")
    label = models.CharField(
        max_length=100,
        blank=True,
        help_text="Per-source or per-destination metrics: the slug to watch. Blank: every one, each alerting "
        "on its own.",
    )
    comparison = models.CharField(max_length=8, choices=COMPARISONS, default=ABOVE)
    threshold = models.FloatField()
    consecutive = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_CONSECUTIVE)],
        help_text="Raise only when the condition holds in this many consecutive snapshots (5 minutes apart).",
    )
    webhook_url = models.URLField(max_length=500, blank=True)
    webhook_secret = EncryptedTextField(blank=True, help_text="Standard Webhooks signing secret (encrypted).")
    is_active = models.BooleanField(default=True)
    created_by = models.CharField(max_length=150, help_text="user:<name> or api:<name>.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(consecutive__gte=1, consecutive__lte=MAX_CONSECUTIVE), name="alert_rule_consecutive_range"
            ),
            models.CheckConstraint(condition=Q(comparison__in=["above", "below"]), name="alert_rule_comparison"),
        ]

    def __str__(self):
        return self.name

    def breached(self, value) -> bool:
        """Whether a value meets the condition; a missing value never does."""
        if value is None:
            return False
        return value > self.threshold if self.comparison == self.ABOVE else value < self.threshold

    @property
    def has_webhook_secret(self) -> bool:
        return bool(self.webhook_secret)


class Alert(models.Model):
    """One breach of a rule (for one label), from raised to resolved, with its webhook delivery."""

    OPEN, RESOLVED = "open", "resolved"
    STATUSES = ((OPEN, "Open"), (RESOLVED, "Resolved"))
    RAISED, RESOLVED_EVENT = "alert.raised", "alert.resolved"
    EVENTS = ((RAISED, "alert.raised"), (RESOLVED_EVENT, "alert.resolved"))
    NO_WEBHOOK, PENDING, DELIVERED, FAILED = "", "pending", "delivered", "failed"
    WEBHOOK_STATUSES = ((NO_WEBHOOK, "No webhook"), (PENDING, "Pending"), (DELIVERED, "Delivered"), (FAILED, "Failed"))

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    label = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=16, choices=STATUSES, default=OPEN)
    value_at_raise = models.FloatField()
    last_value = models.FloatField(null=True, blank=True)
    raised_at = models.DateTimeField(db_index=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=200, blank=True, help_text="Why it resolved.")
    webhook_event = models.CharField(max_length=32, choices=EVENTS, blank=True, help_text="The latest event sent.")
    webhook_status = models.CharField(max_length=16, choices=WEBHOOK_STATUSES, blank=True)
    webhook_attempts = models.PositiveIntegerField(default=0, help_text="Attempts for the latest event.")
    webhook_last_error = models.CharField(max_length=500, blank=True)
    webhook_queued_at = models.DateTimeField(null=True, blank=True)
    webhook_delivered_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=150, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-raised_at", "-id"]
        indexes = [models.Index(fields=["status", "raised_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "label"], condition=Q(status="open"), name="alert_one_open_per_rule_label"
            ),
            models.CheckConstraint(condition=Q(status__in=["open", "resolved"]), name="alert_status"),
        ]

    def __str__(self):
        suffix = f" [{self.label}]" if self.label else ""
        return f"{self.rule}{suffix}: {self.status}"

    @property
    def is_open(self) -> bool:
        return self.status == self.OPEN

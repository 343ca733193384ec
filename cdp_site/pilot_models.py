"""Pilot gates: the agreed thresholds (one row) and the sign-offs that document suppression and rollback.

Imported into cdp_site.models, so these are cdp_site models (cdp_site.view_pilotsignoff, ...).
"""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

__all__ = ["PilotSettings", "PilotSignoff"]

MAX_WINDOW_HOURS = 24 * 30


class PilotSettings(models.Model):
    """What the team agreed a pilot must reach. One row (pk 1): `cdp_site.pilot_gates.pilot_settings()`
    reads it, the gates page changes it (audited)."""

    SINGLETON_PK = 1
    # Defaults a team starts from and changes on the gates page: two thirds of active profiles holding a
    # verified email, phone or member id is what a loyalty-led hospitality pilot usually reaches in its
    # first weeks; 2% unapplied operations is the usual tolerance before someone has to explain it.
    DEFAULT_COVERAGE = 0.6
    DEFAULT_MAX_DELTA = 0.02
    DEFAULT_WINDOW_HOURS = 48

    identity_coverage_threshold = models.FloatField(
        default=DEFAULT_COVERAGE,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Share (0-1) of active profiles that must hold a verified canonical identifier.",
    )
    max_reconciliation_delta = models.FloatField(
        default=DEFAULT_MAX_DELTA,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Largest share (0-1) of planned operations a real sync run may leave unapplied.",
    )
    window_hours = models.PositiveIntegerField(
        default=DEFAULT_WINDOW_HOURS,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_WINDOW_HOURS)],
        help_text="Reconciliation must be clean over this many hours (and identity coverage measured within it).",
    )
    updated_by = models.CharField(max_length=150, blank=True, help_text="user:<name>, or the migration.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "pilot settings"
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="pilot_settings_single_row"),
            models.CheckConstraint(
                condition=Q(identity_coverage_threshold__gte=0, identity_coverage_threshold__lte=1),
                name="pilot_settings_coverage_share",
            ),
            models.CheckConstraint(
                condition=Q(max_reconciliation_delta__gte=0, max_reconciliation_delta__lte=1),
                name="pilot_settings_delta_share",
            ),
            models.CheckConstraint(
                condition=Q(window_hours__gte=1, window_hours__lte=MAX_WINDOW_HOURS), name="pilot_settings_window"
            ),
        ]

    def __str__(self):
        return (
            f"coverage ≥ {self.identity_coverage_threshold:.0%}, delta ≤ {self.max_reconciliation_delta:.1%}, "
            f"{self.window_hours} h"
        )


class PilotSignoff(models.Model):
    """Someone with authority states that a process is documented (or withdraws that statement).

    Append-only like consent records: the newest row per gate counts, so the history of who signed
    what and when stays provable. The ORM refuses changes and deletes; on PostgreSQL a trigger does."""

    SUPPRESSION, ROLLBACK = "suppression", "rollback"
    GATES = ((SUPPRESSION, "Suppression documented"), (ROLLBACK, "Rollback documented"))
    SIGNED, WITHDRAWN = "signed", "withdrawn"
    DECISIONS = ((SIGNED, "Signed off"), (WITHDRAWN, "Withdrawn (no longer valid)"))

    gate = models.CharField(max_length=16, choices=GATES)
    decision = models.CharField(max_length=16, choices=DECISIONS, default=SIGNED)
    document_url = models.URLField(max_length=500, blank=True, help_text="Where the procedure is written down.")
    note = models.TextField(blank=True, help_text="What was reviewed, or why it is withdrawn. Never personal data.")
    signed_by = models.CharField(max_length=150, help_text="user:<name> or api:<name>.")
    signed_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-signed_at", "-id"]
        indexes = [models.Index(fields=["gate", "-signed_at"], name="pilot_signoff_latest")]
        constraints = [
            models.CheckConstraint(condition=~Q(document_url="") | ~Q(note=""), name="pilot_signoff_has_evidence"),
        ]

    def __str__(self):
        return f"{self.get_gate_display()}: {self.get_decision_display()} by {self.signed_by}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("Pilot sign-offs are append-only: record a new one.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Pilot sign-offs are append-only: record a new one.")

    @property
    def is_signed(self) -> bool:
        return self.decision == self.SIGNED

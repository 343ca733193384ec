"""Models of the source audit: stored audit snapshots and the two measurements ingestion keeps for it.

Imported at the bottom of profiles/models.py, so they belong to the profiles app.
"""

from django.db import models


class SourceAuditRun(models.Model):
    """One computation of the source audit: every figure of every source, as JSON.

    The audit reads a bounded window of raw events with aggregate queries; it is too expensive for
    a page view, so pages and the API read the latest run.
    """

    created_at = models.DateTimeField(db_index=True)
    since = models.DateTimeField(help_text="Start of the window of raw events the figures cover.")
    window_days = models.PositiveSmallIntegerField()
    duration_ms = models.FloatField(default=0)
    triggered_by = models.CharField(max_length=150, help_text="schedule, or user:<name>.")
    figures = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"Source audit {self.created_at:%Y-%m-%d %H:%M}"


class SourceDeliveryCount(models.Model):
    """Redeliveries per source and day: raw events the idempotent insert skipped because the same
    (source, external id) was already stored. Written only when a request carried one, so the
    ingestion hot path costs nothing extra when senders do not repeat themselves."""

    source = models.ForeignKey("profiles.Source", on_delete=models.CASCADE, related_name="+")
    day = models.DateField(help_text="UTC day of receipt.")
    duplicates = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "day"], name="source_delivery_count_unique")]

    def __str__(self):
        return f"{self.source_id} {self.day}: {self.duplicates}"


class SourceIdentifier(models.Model):
    """Which sources sent an identifier (Identifier.source is only the first one): the basis of the
    identifier overlap between sources. One row per (source, identifier), written by processing
    with one INSERT ... ON CONFLICT DO NOTHING per batch; deleting the identifier deletes it."""

    source = models.ForeignKey("profiles.Source", on_delete=models.CASCADE, related_name="+")
    identifier = models.ForeignKey("identity.Identifier", on_delete=models.CASCADE, related_name="+")
    # Denormalised (an identifier never changes type): per-type counts and the overlap self-join
    # read this table alone, never the wide, encrypted identifier rows.
    identifier_type = models.ForeignKey(
        "identity.IdentifierType", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(help_text="When first stored; not moved by later sightings.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "identifier"], name="source_identifier_unique"),
        ]

    def __str__(self):
        return f"{self.source_id}:{self.identifier_id}"


__all__ = ["SourceAuditRun", "SourceDeliveryCount", "SourceIdentifier"]

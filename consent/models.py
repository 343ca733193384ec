from django.db import models

from consent import domain


class ConsentRecord(models.Model):
    """Append-only: a consent change is a new row; nothing updates or deletes one."""

    profile = models.ForeignKey("profiles.Profile", on_delete=models.PROTECT, related_name="consent_records")
    purpose = models.CharField(max_length=32, choices=domain.PURPOSES)
    is_granted = models.BooleanField()
    source = models.ForeignKey("profiles.Source", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    raw_event = models.ForeignKey(
        "profiles.RawEvent", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    captured_at = models.DateTimeField()
    recorded_at = models.DateTimeField(auto_now_add=True)
    scope = models.CharField(max_length=200, blank=True, help_text="Wording or policy version the person agreed to.")
    evidence = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["profile", "purpose", "-captured_at"]),
            # The withdrawal sweeper and the propagation page read recent withdrawals only.
            models.Index(fields=["recorded_at"], condition=models.Q(is_granted=False), name="consent_withdrawals"),
        ]
        ordering = ["-captured_at", "-id"]

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("Consent records are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Consent records are append-only.")


class Tombstone(models.Model):
    """A deleted person's identifier, kept only as a keyed hash so their data stays deleted.

    HMAC under TOMBSTONE_KEY of (identifier type, normalised value): no cleartext, and not
    reversible by hashing guesses without the key.
    """

    identifier_type = models.CharField(max_length=64)
    key_hash = models.CharField(max_length=64, unique=True)
    reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"tombstone {self.identifier_type} {self.key_hash[:12]}…"


from consent.requests_models import *  # noqa: E402, F403
from consent.sealed_models import *  # noqa: E402, F403

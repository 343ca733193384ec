"""The trait vault: one row per sealed PII trait value (see consent/sealing.py).

Imported into consent.models, so SealedValue is a consent model.
"""

from django.db import models

__all__ = ["SealedValue"]


class SealedValue(models.Model):
    """A personal trait value, encrypted. Traits hold only its token (a keyed hash), so segments,
    fingerprints and precedence work on tokens; pages, exports and activations decrypt here."""

    token = models.CharField(max_length=68, unique=True, help_text="pii: + HMAC of the canonical value.")
    ciphertext = models.TextField(help_text="Fernet token of the JSON value, under PII_ENCRYPTION_KEYS.")
    created_at = models.DateTimeField()

    def __str__(self):
        return f"sealed {self.token[:16]}…"

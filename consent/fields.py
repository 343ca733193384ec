from django.db import models

from consent import vault


class EncryptedTextField(models.TextField):
    """Text stored as a Fernet token; decrypted on load. Not searchable: use a blind index."""

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return vault.decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return vault.encrypt(value)

"""The one way past the consent records' append-only guard: a privacy purge of a deleted person."""

from contextlib import contextmanager

from django.db import connection, transaction


@contextmanager
def privacy_purge():
    """Inside this block (one transaction), PostgreSQL's guard lets consent records be changed or
    deleted. Only deletion requests and test resets use it."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL cdp.privacy_purge = 'on'")
        yield

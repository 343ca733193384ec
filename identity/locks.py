"""The lock that serialises changes to the identity graph.

Processing, review decisions, unmerges and the probabilistic pass all take it inside their
transaction, so two of them never interleave on a component (and never deadlock on each other's
row locks). On SQLite write transactions are already serialised.
"""

from django.db import connection

# Any constant: the key of the transaction-level advisory lock on PostgreSQL.
IDENTITY_LOCK_KEY = 7_345_001


def identity_lock() -> None:
    """Take the identity lock for the rest of the current transaction (PostgreSQL)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [IDENTITY_LOCK_KEY])


def is_deadlock(error: BaseException) -> bool:
    """A PostgreSQL deadlock or serialisation failure: the transaction was rolled back whole and
    running it again is safe."""
    cause = getattr(error, "__cause__", None)
    return getattr(cause, "sqlstate", None) in ("40P01", "40001")

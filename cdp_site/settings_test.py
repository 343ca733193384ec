"""Test settings: django-q2 in sync mode (it reads its settings once, at import) and fast hashing."""

from cdp_site.settings import *  # noqa: F403
from cdp_site.settings import Q_CLUSTER

Q_CLUSTER = {**Q_CLUSTER, "sync": True}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
# Every store nudges, and the (synchronous) task does not linger.
PROCESSING_NUDGE_INTERVAL = 0
PROCESSING_LINGER_SECONDS = 0

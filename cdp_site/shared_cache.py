"""Django's cache as the processes share it (Redis, or the database cache in production), and what
its users do when it is unreachable: carry on without it, and say so in the logs once a minute."""

import logging
import math
import time

from django.db import DatabaseError
from redis.exceptions import RedisError

# What a cache backend raises when its server is unreachable: Redis a ConnectionError or TimeoutError,
# the database cache a DatabaseError. Backends share no base class for it.
CACHE_UNAVAILABLE = (RedisError, DatabaseError)


class OutageWarning:
    """At most one warning per `interval` seconds per process: an outage must show in the logs, not
    flood them. Only the error's class is logged (its text may hold the cache's address)."""

    def __init__(self, logger: logging.Logger, event: str, *, interval: float = 60.0):
        self.logger, self.event, self.interval = logger, event, interval
        self.warned_at = -math.inf  # time.monotonic() of the last warning

    def __call__(self, error: Exception) -> None:
        now = time.monotonic()
        if now - self.warned_at >= self.interval:
            self.warned_at = now
            self.logger.warning(self.event, type(error).__name__)

    def reset(self) -> None:
        self.warned_at = -math.inf

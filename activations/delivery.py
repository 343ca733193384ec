"""Sending, the same for syncs and triggers: rate limit, one request, classify the answer.

- 429: nothing in the request counts as failed; the destination is paused until Retry-After (all
  senders honour `Destination.paused_until`) and the records are due again then.
- 5xx, timeouts, connection errors: the records are retried with exponential backoff and jitter
  until the destination's `max_attempts`, then parked as failed (visible, replayable).
- 4xx and per-record errors: the connector's `parse` says which records failed and why; only those
  fail, the rest are applied.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx
from django.utils import timezone

from activations.connectors import Connector, PreparedRequest, RecordResult
from activations.connectors.base import excerpt

logger = logging.getLogger(__name__)

BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 300.0
DEFAULT_RETRY_AFTER_SECONDS = 5.0


def backoff_seconds(attempts: int) -> float:
    """Exponential backoff with full jitter (AWS's recommendation): uniform in [base, base * 2^n]."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * (2 ** max(attempts - 1, 0)))
    return random.uniform(min(BACKOFF_BASE_SECONDS, ceiling), ceiling)  # noqa: S311 - jitter, not security


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float:
    """Retry-After is seconds or an HTTP date."""
    if not value:
        return DEFAULT_RETRY_AFTER_SECONDS
    value = value.strip()
    if value.replace(".", "", 1).isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER_SECONDS
    return max((when - (now or timezone.now())).total_seconds(), 0.0)


class RateLimiter:
    """A token bucket per destination, shared by the threads of one process. Runs of one
    destination do not overlap (one run per sync; triggers are few), and a 429 pauses every
    process through the database."""

    _buckets: dict[int, RateLimiter] = {}
    _lock = threading.Lock()

    def __init__(self, rate: float, burst: float | None = None):
        self.rate = max(rate, 0.001)
        self.capacity = burst if burst is not None else max(1.0, self.rate)
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self.mutex = threading.Lock()

    @classmethod
    def for_destination(cls, destination) -> RateLimiter:
        with cls._lock:
            limiter = cls._buckets.get(destination.pk)
            if limiter is None or limiter.rate != destination.rate_limit_per_second:
                # Burst of one: requests go out evenly spaced, as destinations measure them.
                limiter = cls(destination.rate_limit_per_second, burst=1.0)
                cls._buckets[destination.pk] = limiter
            return limiter

    def wait(self) -> float:
        """Block until a request may go; returns the seconds waited."""
        waited = 0.0
        while True:
            with self.mutex:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1.0:
                    self.tokens -= 1.0
                    return waited
                pause = (1.0 - self.tokens) / self.rate
            time.sleep(pause)
            waited += pause

    def hold(self, seconds: float) -> None:
        """After a 429: no tokens until Retry-After has passed."""
        with self.mutex:
            self.tokens = -seconds * self.rate
            self.updated = time.monotonic()


@dataclass
class Delivery:
    """What happened to one request."""

    results: list[RecordResult] = field(default_factory=list)
    retry_after: float | None = None  # set on 429
    transient: str = ""  # set on 5xx / timeout / connection error
    status_code: int | None = None
    started_at: datetime | None = None
    answered_at: datetime | None = None


def client_for(connector: Connector) -> httpx.Client:
    return httpx.Client(
        timeout=connector.destination.timeout_seconds,
        headers={"user-agent": "cdp-backoffice/1.0"},
        limits=httpx.Limits(max_keepalive_connections=4),
    )


def wait_for_destination(destination, limiter: RateLimiter) -> None:
    """Honour a pause set by any process's 429, then the rate limit."""
    destination.refresh_from_db(fields=["paused_until"])
    if destination.paused_until:
        remaining = (destination.paused_until - timezone.now()).total_seconds()
        if remaining > 0:
            time.sleep(remaining)
    limiter.wait()


def deliver(connector: Connector, client: httpx.Client, request: PreparedRequest, limiter: RateLimiter) -> Delivery:
    destination = connector.destination
    wait_for_destination(destination, limiter)
    outcome = Delivery(started_at=timezone.now())
    try:
        response = connector.deliver(client, request, destination.timeout_seconds)
    except httpx.TimeoutException:
        outcome.transient = f"timeout after {destination.timeout_seconds:g} s"
    except httpx.HTTPError as error:
        outcome.transient = f"connection error: {type(error).__name__}: {error}"[:500]
    else:
        outcome.answered_at = timezone.now()
        outcome.status_code = response.status_code
        if response.status_code == 429:
            seconds = retry_after_seconds(response.headers.get("retry-after"))
            outcome.retry_after = seconds
            limiter.hold(seconds)
            type(destination).objects.filter(pk=destination.pk).update(
                paused_until=timezone.now() + timedelta(seconds=seconds)
            )
        elif response.status_code >= 500 or response.status_code == 408:
            outcome.transient = excerpt(response)
        else:
            outcome.results = connector.parse(request, response)
            missing = set(request.record_ids) - {result.id for result in outcome.results}
            outcome.results += [
                RecordResult(id=rid, ok=False, status_code=response.status_code, message="no answer for this record")
                for rid in sorted(missing)
            ]
    return outcome

import secrets

import pytest


@pytest.fixture
def address():
    """A client address of its own per call: log-in counters live in a cache that may outlive a test
    (Redis when REDIS_URL is set), so tests never share an address or a username."""

    def make() -> str:
        return "10." + ".".join(str(secrets.randbelow(256)) for _ in range(3))

    return make


@pytest.fixture
def unique_name():
    """A username no other test (or other test process sharing the cache) uses."""
    return lambda prefix="user": f"{prefix}-{secrets.token_hex(6)}"

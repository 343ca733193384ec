import itertools

import pytest

from profiles import mappers
from profiles.models import RawEvent
from profiles.sources import source_create

_ids = itertools.count(1)


@pytest.fixture
def canonical_source(monkeypatch, db):
    """A source whose payloads are canonical events (see canonical_mapper)."""
    monkeypatch.setitem(mappers._MODULES, "csv", "tests.profiles.processing.canonical_mapper")
    source, _ = source_create(name="Canonical test source", kind="csv", priority=50)
    return source


@pytest.fixture
def send(canonical_source):
    """Store one pending raw event holding the given canonical events."""

    def send(*events, source=None, external_id=None, **payload):
        return RawEvent.objects.create(
            source=source or canonical_source,
            external_id=external_id or f"evt-{next(_ids)}",
            received_at="2026-01-01T00:00:00Z",
            payload={"events": list(events), **payload},
        )

    return send


def event(type_="track.custom", at="2026-01-01T10:00:00+00:00", ids=(), **fields):
    return {"type": type_, "at": at, "ids": [list(pair) for pair in ids], **fields}

import itertools

_ids = itertools.count(1)


def event(type_="track.custom", at="2026-01-01T10:00:00+00:00", ids=(), **fields):
    return {"type": type_, "at": at, "ids": [list(pair) for pair in ids], **fields}

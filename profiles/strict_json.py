"""Strict JSON for storage, shared by the tracking API and the webhooks: an object, no NaN or
Infinity, bounded depth, and only strings PostgreSQL's jsonb and UTF-8 can hold."""

import json
import math

# Deeper than any real payload; bounds every recursive walk over it later (mappers, JSON columns).
MAX_JSON_DEPTH = 64


class JsonRejected(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def _reject_constant(name: str):
    raise JsonRejected("invalid_json", f"{name} is not a JSON number.")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise JsonRejected("invalid_json", f"Number {text[:40]} is out of range.")
    return value


def json_object_load(body: bytes) -> dict:
    """Strict JSON for storage: an object, no NaN/Infinity, at most MAX_JSON_DEPTH levels, and no
    string (key or value) that PostgreSQL's jsonb or UTF-8 cannot hold (NUL, lone surrogates).
    Raises JsonRejected with a message that says what was wrong."""
    try:
        document = json.loads(body, parse_constant=_reject_constant, parse_float=_finite_float)
    except JsonRejected:
        raise
    except RecursionError as error:
        raise JsonRejected("too_deep", f"JSON nests deeper than {MAX_JSON_DEPTH} levels.") from error
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, an integer of too many digits
        raise JsonRejected("invalid_json", f"Body is not valid JSON: {error}") from error
    if not isinstance(document, dict):
        raise JsonRejected("invalid_json", "Body must be a JSON object.")
    _check_storable(document)
    return document


def _check_storable(document: dict) -> None:
    stack = [(document, 1, "$")]
    while stack:
        value, depth, path = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise JsonRejected("too_deep", f"JSON nests deeper than {MAX_JSON_DEPTH} levels (at {path[:200]}).")
        if isinstance(value, dict):
            for key, item in value.items():
                _check_string(key, f"{path}.{key[:50]!r}")
                if isinstance(item, dict | list):
                    stack.append((item, depth + 1, f"{path}.{key[:50]}"))
                elif isinstance(item, str):
                    _check_string(item, f"{path}.{key[:50]}")
        else:
            for index, item in enumerate(value):
                if isinstance(item, dict | list):
                    stack.append((item, depth + 1, f"{path}[{index}]"))
                elif isinstance(item, str):
                    _check_string(item, f"{path}[{index}]")


def _check_string(text: str, path: str) -> None:
    if "\x00" in text:
        raise JsonRejected("invalid_string", f"{path[:200]}: strings may not contain NUL (\\u0000).")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise JsonRejected("invalid_string", f"{path[:200]}: not valid Unicode (a lone surrogate).") from error

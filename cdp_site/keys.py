"""Development keys: generated once into var/ so a fresh clone runs with nothing configured.

Production settings never call this; they refuse to start without keys from the environment.
"""

import base64
import json
import os
import secrets
import time
from pathlib import Path


def _fernet_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def load_or_create_dev_keys(var_dir: Path) -> dict:
    path = var_dir / "dev-keys.json"
    if path.exists():
        return json.loads(path.read_text())
    var_dir.mkdir(parents=True, exist_ok=True)
    keys = {
        "secret_key": secrets.token_urlsafe(50),
        "pii_encryption_keys": [_fernet_key()],
        "pii_blind_index_key": secrets.token_urlsafe(32),
        "tombstone_key": secrets.token_urlsafe(32),
    }
    # Written with O_EXCL so two processes starting at once cannot each write a different key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_when_written(path)
    with os.fdopen(fd, "w") as handle:
        json.dump(keys, handle)
    return keys


def _read_when_written(path: Path) -> dict:
    # Another process created the file a moment ago and may still be writing it.
    for _ in range(50):
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            time.sleep(0.05)
    return json.loads(path.read_text())

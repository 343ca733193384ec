"""Every machine must hash with the same keys: the blind index (PII_BLIND_INDEX_KEY) finds
identifiers and sealed traits, the tombstone key (TOMBSTONE_KEY) recognises erased people. A worker
started with other keys would not find anyone: it would create duplicate profiles and take back in
people a deletion erased, silently.

So the database remembers a fingerprint of each key, HMAC(key, "cdp key fingerprint:<name>"), which
reveals nothing about the key. The first process to look records them (the migration does, with
the keys of the machine that migrates); every worker compares its own before it processes events,
and `manage.py check --database default` reports a mismatch.

Not covered: PII_ENCRYPTION_KEYS change by design during a rotation (each machine must hold the
keys in use, README "Several web and worker machines"), and a differing SECRET_KEY already fails
loudly (django-q2 cannot read tasks signed with another).
"""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings
from django.db import IntegrityError, transaction

CHECKED_SETTINGS = ("PII_BLIND_INDEX_KEY", "TOMBSTONE_KEY")
_verified = False  # this process matched the database once: keys do not change in a running process


class DeploymentKeyMismatch(Exception):
    pass


def fingerprint(name: str, key: str) -> str:
    return hmac.new(key.encode(), f"cdp key fingerprint:{name}".encode(), hashlib.sha256).hexdigest()


def deployment_keys_compare(*, record: bool = True) -> list[str]:
    """Names of the settings whose key differs from the one the database recorded. A key not
    recorded yet is recorded (first writer wins), unless `record` is False."""
    from cdp_site.models import DeploymentKey

    recorded = dict(DeploymentKey.objects.values_list("name", "fingerprint"))
    mismatched = []
    for name in CHECKED_SETTINGS:
        mine = fingerprint(name, getattr(settings, name))
        if name not in recorded:
            if record:
                try:
                    with transaction.atomic():
                        DeploymentKey.objects.create(name=name, fingerprint=mine)
                    continue
                except IntegrityError:  # another process recorded it first: compare with that
                    recorded[name] = DeploymentKey.objects.get(name=name).fingerprint
            else:
                continue
        if not hmac.compare_digest(recorded[name], mine):
            mismatched.append(name)
    return mismatched


def deployment_keys_verify() -> None:
    """Raise DeploymentKeyMismatch unless this process's keys are the ones the data was written with.
    Once it has matched, the process does not ask again."""
    global _verified
    if _verified:
        return
    mismatched = deployment_keys_compare()
    if mismatched:
        raise DeploymentKeyMismatch(
            f"{', '.join(mismatched)} on this machine differ from the keys this database was written with: "
            "refusing to process (identifiers would not be found and erased people would come back). "
            "Set the same values as on the other machines."
        )
    _verified = True

"""Tombstones: keyed hashes of deleted people's identifiers, checked before anything is sent."""

import hashlib
import hmac

from django.conf import settings

from consent.models import Tombstone


def tombstone_hash(identifier_type: str, normalised_value: str) -> str:
    message = f"{identifier_type}\x00{normalised_value}".encode()
    return hmac.new(settings.TOMBSTONE_KEY.encode(), message, hashlib.sha256).hexdigest()


def tombstone_write(*, identifier_type: str, normalised_value: str, reason: str = "") -> Tombstone:
    tombstone, _ = Tombstone.objects.get_or_create(
        key_hash=tombstone_hash(identifier_type, normalised_value),
        defaults={"identifier_type": identifier_type, "reason": reason[:200]},
    )
    return tombstone


def tombstoned_profile_ids(profile_ids) -> set[int]:
    """Which of these profiles are deleted, or hold an identifier a deletion request tombstoned."""
    from identity.models import Identifier
    from profiles.models import Profile

    profile_ids = list(profile_ids)
    if not profile_ids:
        return set()
    found = set(Profile.objects.filter(id__in=profile_ids, status=Profile.DELETED).values_list("id", flat=True))
    if not Tombstone.objects.exists():
        return found
    by_hash: dict[str, set[int]] = {}
    for start in range(0, len(profile_ids), 500):
        chunk = profile_ids[start : start + 500]
        for identifier in Identifier.objects.filter(profile_id__in=chunk).select_related("identifier_type"):
            value = identifier.display_value
            if value:
                key = tombstone_hash(identifier.identifier_type.slug, value)
                by_hash.setdefault(key, set()).add(identifier.profile_id)
    hashes = list(by_hash)
    for start in range(0, len(hashes), 500):
        chunk = hashes[start : start + 500]
        for key_hash in Tombstone.objects.filter(key_hash__in=chunk).values_list("key_hash", flat=True):
            found |= by_hash[key_hash]
    return found

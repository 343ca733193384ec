"""The PII vault: encryption at rest with rotatable keys, and keyed blind indexes for lookups.

Fernet output is random, so equality lookups go through a blind index: an HMAC of the normalised
value under a separate key. A plain hash of an email could be reversed by guessing; an HMAC cannot
without the key.
"""

import hashlib
import hmac
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("PII_ENCRYPTION_KEYS is empty: PII cannot be encrypted.")
    return MultiFernet([Fernet(key) for key in keys])


def _current_fernet() -> MultiFernet:
    return _fernet(tuple(settings.PII_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return _current_fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _current_fernet().decrypt(token.encode()).decode()
    except InvalidToken as error:
        raise ValueError("PII token does not decrypt with any configured key") from error


def rotate(token: str) -> str:
    """Re-encrypt a token under the first (current) key."""
    return _current_fernet().rotate(token.encode()).decode()


def blind_index(kind: str, normalised_value: str) -> str:
    """Keyed HMAC of a normalised value, namespaced by its kind (identifier type)."""
    message = f"{kind}\x00{normalised_value}".encode()
    return hmac.new(settings.PII_BLIND_INDEX_KEY.encode(), message, hashlib.sha256).hexdigest()


def constant_time_equals(left: str | bytes, right: str | bytes) -> bool:
    if isinstance(left, str):
        left = left.encode()
    if isinstance(right, str):
        right = right.encode()
    return hmac.compare_digest(left, right)

"""PII traits sealed at rest.

A personal trait value (a name, an email or phone given as a trait, an address, a birthday: the keys
`cdp_site.pii.is_pii_key` names) never reaches Profile.traits or TraitValue.value in cleartext.
Ingestion replaces it with a token, `pii:` + an HMAC (PII_BLIND_INDEX_KEY) of its canonical form
(text trimmed and case-folded), and stores the value itself once, Fernet-encrypted, in SealedValue.

Because the token is deterministic, everything that compares or moves trait values keeps working on
tokens without seeing cleartext: trait precedence and merges, sync fingerprints (a changed value is a
changed token), and segment conditions `exists`, `eq`, `neq` and `in` (the compiler tokenises the
value it compares with). Conditions that need the text itself (`contains`, dates, numbers) are
refused for personal traits with a message saying so. Readers that must show or send the value
(profile pages under masking, the access archive, activations, fuzzy matching) decrypt in one query
per batch. Values stored before sealing existed are plain JSON and read as they are.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from datetime import date

from django.conf import settings
from django.db import connection
from django.utils import timezone

from cdp_site.pii import is_pii_key
from consent import vault

TOKEN_PREFIX = "pii:"
TOKEN_LENGTH = len(TOKEN_PREFIX) + 64
# A birthday is sealed, so "birthday this month" campaigns get the month as its own (also sealed,
# so compared with eq/in) trait.
BIRTHDAY_KEYS = ("birthday", "birth_date", "date_of_birth", "dob")
BIRTH_MONTH = "birth_month"


def is_sealed_key(key) -> bool:
    return is_pii_key(key)


def sealable(value) -> bool:
    """Booleans and nulls say nothing about a person; everything else under a personal key is sealed."""
    return value is not None and not isinstance(value, bool) and value != ""


def is_token(value) -> bool:
    return isinstance(value, str) and len(value) == TOKEN_LENGTH and value.startswith(TOKEN_PREFIX)


def canonical(value) -> str:
    if isinstance(value, str):
        return "s:" + value.strip().casefold()
    if isinstance(value, int | float):
        number = float(value)
        return "n:" + (repr(int(number)) if number.is_integer() else repr(number))
    return "j:" + json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def token_for(value) -> str:
    digest = hmac.new(
        settings.PII_BLIND_INDEX_KEY.encode(), f"trait\x00{canonical(value)}".encode(), hashlib.sha256
    ).hexdigest()
    return TOKEN_PREFIX + digest


def comparison_value(key, value):
    """What a segment condition on trait `key` compares with: the token when the trait is sealed."""
    if is_sealed_key(key) and sealable(value) and not is_token(value):
        return token_for(value)
    return value


def _birth_month(value) -> int | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value.strip()[:10]).month
    except ValueError:
        return None


def seal_traits(traits: dict, vault_entries: dict) -> dict:
    """Traits with every personal value replaced by its token; the values go into `vault_entries`
    (token -> value) for `vault_store`. Adds `birth_month` next to a birthday."""
    sealed = {}
    for key, value in traits.items():
        if key in BIRTHDAY_KEYS and BIRTH_MONTH not in traits:
            month = _birth_month(value)
            if month is not None:
                token = token_for(month)
                vault_entries.setdefault(token, month)
                sealed[BIRTH_MONTH] = token
        if is_sealed_key(key) and sealable(value) and not is_token(value):
            token = token_for(value)
            vault_entries.setdefault(token, value)
            sealed[key] = token
        else:
            sealed[key] = value
    return sealed


def vault_store(entries: dict) -> int:
    """Store the values not in the vault yet (only those are encrypted). Safe under concurrency: a
    token another worker stored first is skipped by the unique constraint."""
    from cdp_site.db import insert_rows
    from consent.models import SealedValue

    if not entries:
        return 0
    tokens = list(entries)
    existing = set()
    for start in range(0, len(tokens), 1000):
        chunk = tokens[start : start + 1000]
        existing.update(SealedValue.objects.filter(token__in=chunk).values_list("token", flat=True))
    now = timezone.now()
    rows = [
        (token, vault.encrypt(json.dumps(entries[token], ensure_ascii=False)), now)
        for token in tokens
        if token not in existing
    ]
    if rows:
        insert_rows(SealedValue, ["token", "ciphertext", "created_at"], rows, ignore_conflicts=True)
    return len(rows)


def unseal_values(tokens: Iterable, cache: dict | None = None) -> dict:
    """token -> cleartext value for the tokens given (one query per thousand tokens). With `cache`
    (a dict kept across calls), tokens already decrypted are not fetched again, and it is returned."""
    from consent.models import SealedValue

    values = cache if cache is not None else {}
    wanted = sorted({token for token in tokens if is_token(token) and token not in values})
    for start in range(0, len(wanted), 1000):
        for token, ciphertext in SealedValue.objects.filter(token__in=wanted[start : start + 1000]).values_list(
            "token", "ciphertext"
        ):
            values[token] = json.loads(vault.decrypt(ciphertext))
    return values


def _tokens_in(traits: dict) -> set:
    return {value for value in (traits or {}).values() if is_token(value)}


def unseal_traits(traits: dict, values: dict | None = None) -> dict:
    """The traits in cleartext. A token the vault no longer holds (its person was deleted) reads as None."""
    traits = traits or {}
    if values is None:
        values = unseal_values(_tokens_in(traits))
    return {key: (values.get(value) if is_token(value) else value) for key, value in traits.items()}


def unseal_trait_dicts(rows: list[dict], field: str = "traits", cache: dict | None = None) -> list[dict]:
    """Decrypt the traits of many rows (dicts from .values()) in place, with one vault query."""
    values = unseal_values((token for row in rows for token in _tokens_in(row.get(field) or {})), cache)
    for row in rows:
        row[field] = unseal_traits(row.get(field) or {}, values)
    return rows


def unseal_trait_pairs(rows: Iterable[tuple], cache: dict, chunk: int = 2000) -> Iterable[tuple]:
    """(id, traits) pairs streamed from the database, traits decrypted a chunk at a time; `cache`
    keeps decrypted values across chunks (names repeat)."""
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) >= chunk:
            yield from _unsealed_pairs(batch, cache)
            batch = []
    yield from _unsealed_pairs(batch, cache)


def _unsealed_pairs(batch: list[tuple], cache: dict) -> list[tuple]:
    values = unseal_values((token for _id, traits in batch for token in _tokens_in(traits)), cache)
    return [(row_id, unseal_traits(traits or {}, values)) for row_id, traits in batch]


def profiles_unseal(profiles) -> list:
    """Fill Profile.clear_traits for many profiles with one vault query (lists of profiles)."""
    profiles = list(profiles)
    values = unseal_values(token for profile in profiles for token in _tokens_in(profile.traits))
    for profile in profiles:
        profile.__dict__["_clear_traits"] = (profile.traits, unseal_traits(profile.traits or {}, values))
    return profiles


# -- deletion -----------------------------------------------------------------------------------------


def sealed_trait_value_ids(tokens: list[str], *, tokens_only: bool = False) -> set:
    """Ids of the trait value rows holding any of these tokens (with `tokens_only`: which of the tokens
    are held). Served by the partial expression index traitvalue_sealed_token (consent migration 0007)."""
    from profiles.models import TraitValue

    table = connection.ops.quote_name(TraitValue._meta.db_table)
    if connection.vendor == "postgresql":
        column, predicate = "value #>> '{}'", SEALED_INDEX_PREDICATE_PG
    else:
        column, predicate = "json_extract(value, '$')", SEALED_INDEX_PREDICATE_SQLITE
    selected = f"DISTINCT {column}" if tokens_only else "id"
    found = set()
    for start in range(0, len(tokens), 500):
        chunk = tokens[start : start + 500]
        marks = ", ".join(["%s"] * len(chunk))
        sql = f"SELECT {selected} FROM {table} WHERE {predicate} AND {column} IN ({marks})"  # noqa: S608
        with connection.cursor() as cursor:
            cursor.execute(sql, chunk)
            found.update(row[0] for row in cursor.fetchall())
    return found


def vault_forget(tokens: Iterable, *, force: bool = False) -> int:
    """Delete the vault rows of these tokens, except those some trait value still holds (unless
    `force`: the deleted person's email or phone goes wherever it was held). Call after blanking the
    deleted person's trait values, in the same transaction."""
    from consent.models import SealedValue

    candidates = sorted({token for token in tokens if is_token(token)})
    if not candidates:
        return 0
    keep = set() if force else sealed_trait_value_ids(candidates, tokens_only=True)
    forget = [token for token in candidates if token not in keep]
    deleted = 0
    for start in range(0, len(forget), 1000):
        deleted += SealedValue.objects.filter(token__in=forget[start : start + 1000]).delete()[0]
    return deleted


SEALED_INDEX_PREDICATE_PG = "jsonb_typeof(value) = 'string' AND left(value #>> '{}', 4) = 'pii:'"
SEALED_INDEX_PREDICATE_SQLITE = "json_type(value) = 'text' AND substr(json_extract(value, '$'), 1, 4) = 'pii:'"


# -- sealing values stored before sealing existed ------------------------------------------------------


def seal_stored_traits(*, Profile, TraitValue, SealedValue, chunk: int = 2000) -> dict:  # noqa: N803 (models)
    """Seal cleartext personal traits already in the database (idempotent: tokens stay as they are).
    Takes the model classes so a migration can pass its historical ones."""

    def store(entries: dict) -> None:
        if entries:
            now = timezone.now()
            SealedValue.objects.bulk_create(
                [
                    SealedValue(
                        token=token, ciphertext=vault.encrypt(json.dumps(value, ensure_ascii=False)), created_at=now
                    )
                    for token, value in entries.items()
                ],
                ignore_conflicts=True,
            )

    counts = {"profiles": 0, "trait_values": 0}
    last = 0
    while True:
        rows = list(Profile.objects.filter(pk__gt=last).order_by("pk").values_list("pk", "traits")[:chunk])
        if not rows:
            break
        last = rows[-1][0]
        entries, changed = {}, []
        for pk, traits in rows:
            if not isinstance(traits, dict):
                continue
            sealed = seal_traits(traits, entries)
            if sealed != traits:
                changed.append(Profile(pk=pk, traits=sealed))
        store(entries)
        Profile.objects.bulk_update(changed, ["traits"])
        counts["profiles"] += len(changed)
    keys = [key for key in TraitValue.objects.order_by().values_list("key", flat=True).distinct() if is_sealed_key(key)]
    last = 0
    while keys:
        rows = list(
            TraitValue.objects.filter(pk__gt=last, key__in=keys).order_by("pk").values_list("pk", "value")[:chunk]
        )
        if not rows:
            break
        last = rows[-1][0]
        entries, changed = {}, []
        for pk, value in rows:
            if sealable(value) and not is_token(value):
                token = token_for(value)
                entries.setdefault(token, value)
                changed.append(TraitValue(pk=pk, value=token))
        store(entries)
        TraitValue.objects.bulk_update(changed, ["value"])
        counts["trait_values"] += len(changed)
    return counts

"""Reading profiles into match records, a bounded number at a time."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator

from consent.sealing import unseal_trait_pairs
from identity.matching import domain
from identity.models import Identifier
from profiles.models import Profile

# Identifier types whose cleartext feeds the comparison (email local part, phone suffix).
EMAIL, PHONE = "email", "phone"
# Under SQLite's bound-parameter limit, and small enough to keep each read cheap.
ID_CHUNK = 500


def _chunks(ids: list[int], size: int = ID_CHUNK) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def records_for(profile_ids: Iterable[int]) -> dict[int, domain.MatchRecord]:
    """Match records of these profiles (a bounded set: one chunk of candidate pairs)."""
    records, sealed = {}, {}
    for chunk in _chunks(sorted(set(profile_ids))):
        emails, phones = defaultdict(list), defaultdict(list)
        identifiers = (
            Identifier.objects.filter(profile_id__in=chunk, identifier_type__slug__in=(EMAIL, PHONE))
            .select_related("identifier_type")
            .only("value", "encrypted_value", "profile_id", "identifier_type__slug")
        )
        for identifier in identifiers:
            target = emails if identifier.identifier_type.slug == EMAIL else phones
            target[identifier.profile_id].append(identifier.display_value)  # decrypts PII in memory only
        pairs = Profile.objects.filter(pk__in=chunk).values_list("id", "traits")
        for profile_id, traits in unseal_trait_pairs(pairs, cache=sealed):  # names are sealed traits
            records[profile_id] = domain.normalise_record(
                profile_id, traits, emails=emails[profile_id], phones=phones[profile_id]
            )
    return records


def profile_id_chunks(queryset, size: int = ID_CHUNK) -> Iterator[list[int]]:
    """Ids of a profile queryset in ascending chunks, streamed from the database."""
    chunk = []
    for profile_id in queryset.order_by("id").values_list("id", flat=True).iterator(chunk_size=2000):
        chunk.append(profile_id)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def term_frequencies(queryset) -> domain.TermFrequencies:
    """How often each normalised name and postcode occurs among these profiles, streamed from the database.

    Reads traits only (names and postcodes are traits), a chunk at a time: memory follows the
    distinct values, not the profiles.
    """
    rows = unseal_trait_pairs(queryset.order_by().values_list("id", "traits").iterator(chunk_size=2000), cache={})
    return domain.term_frequencies(domain.normalise_record(profile_id, traits) for profile_id, traits in rows)

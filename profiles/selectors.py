"""Reads of profiles."""

from __future__ import annotations

from profiles.models import Profile


def profile_resolve(*, profile_id: int) -> Profile | None:
    """The active profile a (possibly merged-away) profile id now belongs to, or None.

    Ids merged away keep answering: they lead to the surviving profile while merged.
    """
    profile = Profile.objects.filter(pk=profile_id).first()
    seen = set()
    while (
        profile is not None and profile.status == Profile.MERGED and profile.merged_into_id and profile.pk not in seen
    ):
        seen.add(profile.pk)
        profile = Profile.objects.filter(pk=profile.merged_into_id).first()
    return profile


def profile_search(*, query: str):
    """Active profiles matching an identifier (`type:value`, a bare email or phone) or a name.

    Raises ValueError with a message for a `type:value` that is not a known type or does not
    normalise, so the form can say what was wrong.
    """
    from django.db.models import Q

    from consent.sealing import token_for
    from identity import domain
    from identity.selectors import identifier_find, parse_identifier_query

    query = query.strip()
    active = Profile.objects.filter(status=Profile.ACTIVE)
    if not query:
        return active.order_by("-last_seen_at", "-id")
    parsed = parse_identifier_query(query)
    candidates = []
    if parsed and not query.lower().startswith(("http:", "https:")):
        try:
            identifier = identifier_find(type_slug=parsed[0], raw_value=parsed[1])
        except LookupError as error:
            raise ValueError(str(error)) from error
        except domain.InvalidIdentifier as error:
            raise ValueError(f"{parsed[0]}: {error}") from error
        candidates.append(identifier)
    else:
        if "@" in query:
            try:
                candidates.append(identifier_find(type_slug="email", raw_value=query))
            except domain.InvalidIdentifier:
                pass
        if any(ch.isdigit() for ch in query) and not any(ch.isalpha() for ch in query):
            try:
                candidates.append(identifier_find(type_slug="phone", raw_value=query))
            except domain.InvalidIdentifier:
                pass
    ids = {identifier.profile_id for identifier in candidates if identifier is not None}
    if ids or parsed:
        return active.filter(pk__in=ids).order_by("-last_seen_at", "-id")
    # Names are sealed traits (consent/sealing.py): matched by token, so whole words, any case.
    words = [word for word in query.split() if word]
    by_words = Q()
    for word in words:
        token = token_for(word)
        by_words &= Q(traits__first_name=token) | Q(traits__last_name=token) | Q(traits__name=token)
    whole = token_for(" ".join(words))
    condition = by_words | Q(traits__name=whole) | Q(traits__full_name=whole)
    return active.filter(condition).order_by("-last_seen_at", "-id")

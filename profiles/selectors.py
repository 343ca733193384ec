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

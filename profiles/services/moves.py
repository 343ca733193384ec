"""Moving a profile's rows to another profile: the write half of a merge."""

from __future__ import annotations

from django.db import models

from consent.models import ConsentRecord
from identity.models import Identifier
from profiles.models import Event, Profile, TraitValue


def _move(model: type[models.Model], from_profile_id: int, to_profile_id: int) -> list[int]:
    ids = list(model.objects.filter(profile_id=from_profile_id).values_list("id", flat=True))
    if ids:
        model.objects.filter(profile_id=from_profile_id).update(profile_id=to_profile_id)
    return ids


def profile_rows_move(*, from_profile_id: int, to_profile_id: int) -> dict:
    """Repoint identifiers, events, trait values and consent records; mark the profile merged.

    Returns the ids that moved, kept on the Merge row so an unmerge can restore them exactly.
    """
    moved = {
        "identifiers": _move(Identifier, from_profile_id, to_profile_id),
        "events": _move(Event, from_profile_id, to_profile_id),
        "trait_values": _move(TraitValue, from_profile_id, to_profile_id),
        "consent_records": _move(ConsentRecord, from_profile_id, to_profile_id),
    }
    Profile.objects.filter(pk=from_profile_id).update(status=Profile.MERGED, merged_into_id=to_profile_id)
    return moved

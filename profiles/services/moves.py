"""Moving a profile's rows to another profile: the write half of a merge."""

from __future__ import annotations

from django.db import connection

from cdp_site.db import update_rows
from consent.models import ConsentRecord
from identity.models import Identifier
from profiles.models import Event, Profile, TraitValue


def profile_rows_move_many(*, moves: list[tuple[int, int]]) -> dict[int, dict]:
    """Many merges at once: `moves` is [(absorbed_id, survivor_id)] in merge order. Rows end on the
    final survivor of each chain (A into B, then B into C: A's rows end on C). Returns, per
    absorbed profile, the ids that were on it when the batch began."""
    if not moves:
        return {}
    final = {}
    for absorbed, survivor in moves:
        final[absorbed] = survivor
    for absorbed in final:
        target, seen = final[absorbed], {absorbed}
        while target in final and target not in seen:
            seen.add(target)
            target = final[target]
        final[absorbed] = target
    absorbed_ids = sorted(final)
    moved = {absorbed: {name: [] for name in _TABLES} for absorbed in absorbed_ids}
    by_root = {}
    for absorbed, root in final.items():
        by_root.setdefault(root, []).append(absorbed)
    for name, model in _TABLES.items():
        for row_id, profile_id in _repoint(model, final, by_root):
            moved[profile_id][name].append(row_id)
    for rows in moved.values():
        for ids in rows.values():
            ids.sort()
    update_rows(
        Profile, ["status", "merged_into"], [(absorbed, Profile.MERGED, survivor) for absorbed, survivor in moves]
    )
    return moved


def _repoint(model, final: dict[int, int], by_root: dict[int, list[int]]) -> list[tuple[int, int]]:
    """Move the rows of absorbed profiles to their final survivor; returns (row id, absorbed id)."""
    if connection.vendor == "postgresql":
        # One statement: the moved rows come back with the profile they left.
        table = connection.ops.quote_name(model._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} AS t SET profile_id = m.root "  # noqa: S608
                "FROM unnest(%b::bigint[], %b::bigint[]) AS m(absorbed, root) "
                "WHERE t.profile_id = m.absorbed RETURNING t.id, m.absorbed",
                [list(final), list(final.values())],
            )
            return cursor.fetchall()
    found = []
    for root, absorbed in by_root.items():
        for start in range(0, len(absorbed), 900):
            chunk = absorbed[start : start + 900]
            rows = model.objects.filter(profile_id__in=chunk)
            found.extend(rows.values_list("id", "profile_id"))
            rows.update(profile_id=root)
    return found


_TABLES = {
    "identifiers": Identifier,
    "events": Event,
    "trait_values": TraitValue,
    "consent_records": ConsentRecord,
}

"""Merging two profiles on a link, and undoing a merge exactly.

Callers hold a transaction and the identity lock (the public services in this package take both).
"""

from __future__ import annotations

import logging
from collections import Counter

from django.db import transaction
from django.utils import timezone

from cdp_site.audit import audit_record
from consent.models import ConsentRecord
from identity import domain
from identity.locks import identity_lock
from identity.models import Identifier, IdentityLink, Merge, Unmerge
from profiles.models import Event, Profile, TraitValue
from profiles.services.moves import profile_rows_move_many
from profiles.services.recompute import profile_recompute

logger = logging.getLogger(__name__)


class IdentityActionError(ValueError):
    """A review or unmerge action that cannot be done, with a message for the person who asked."""


def profile_root(profile_id: int) -> Profile:
    """The active profile a (possibly merged-away) profile now belongs to."""
    from profiles.selectors import profile_resolve

    profile = profile_resolve(profile_id=profile_id)
    if profile is None or profile.status != Profile.ACTIVE:
        raise IdentityActionError(f"profile {profile_id} has no active profile behind it")
    return profile


def _ids_chunked(ids, size=900):
    ids = sorted(ids)
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def profiles_merge_locked(
    *, survivor_id: int, absorbed_id: int, link: IdentityLink, rule: str, actor: str, evidence: dict
) -> Merge:
    """Absorb one active profile into another on `link` (made active). Caller holds the lock."""
    now = timezone.now()
    survivor_identifiers = list(Identifier.objects.filter(profile_id=survivor_id).values_list("id", flat=True))
    moved = profile_rows_move_many(moves=[(absorbed_id, survivor_id)])
    link.status, link.reason = IdentityLink.ACTIVE, ""
    link.save(update_fields=["status", "reason", "kind", "confidence", "reviewed_by", "reviewed_at", "review_note"])
    merge = Merge.objects.create(
        survivor_id=survivor_id,
        absorbed_id=absorbed_id,
        link=link,
        rule=rule,
        actor=actor,
        confidence=link.confidence,
        evidence=evidence,
        moved=moved.get(absorbed_id, {}),
        survivor_identifiers=sorted(survivor_identifiers),
        created_at=now,
    )
    profile_recompute(profile_id=survivor_id)
    logger.info("profiles_merged survivor_id=%s absorbed_id=%s rule=%s actor=%s", survivor_id, absorbed_id, rule, actor)
    return merge


def _merged_descendants(root_id: int) -> list[int]:
    """Profiles merged (directly or through a chain) into `root_id`: one query per level of depth."""
    found, frontier = [], [root_id]
    while frontier:
        children = []
        for chunk in _ids_chunked(frontier):
            children.extend(
                Profile.objects.filter(status=Profile.MERGED, merged_into_id__in=chunk).values_list("id", flat=True)
            )
        children = [child for child in children if child not in found and child != root_id]
        found.extend(children)
        frontier = children
    return found


@transaction.atomic
def merge_unmerge(*, merge_id: int, actor: str, reason: str = "") -> Unmerge:
    """Undo a merge: reject the links that hold its two sides together, split that one component,
    and give the restored profile back exactly its identifiers, events, trait values and consent
    records (and whatever arrived for its identifiers since), recomputing both sides."""
    identity_lock()
    merge = Merge.objects.select_for_update().filter(pk=merge_id).first()
    if merge is None:
        raise IdentityActionError(f"no merge {merge_id}")
    if merge.unmerged_at is not None:
        raise IdentityActionError(f"merge {merge_id} was already undone on {merge.unmerged_at:%Y-%m-%d %H:%M}")
    root = profile_root(merge.absorbed_id)
    if profile_root(merge.survivor_id).pk != root.pk:
        raise IdentityActionError(f"the two sides of merge {merge_id} are no longer in one profile")
    now = timezone.now()

    members = dict(Identifier.objects.filter(profile_id=root.pk).values_list("id", "first_seen_at"))
    links = list(
        IdentityLink.objects.filter(status=IdentityLink.ACTIVE, from_identifier__profile_id=root.pk).values_list(
            "id", "from_identifier_id", "to_identifier_id"
        )
    )
    absorbed_side = set(merge.moved.get("identifiers", [])) & set(members)
    survivor_side = (set(merge.survivor_identifiers) & set(members)) - absorbed_side
    if not survivor_side:
        # A merge recorded before survivor identifiers were kept: the survivor's end of the link
        # and whatever the survivor already held when the merge happened.
        link_ends = {merge.link.from_identifier_id, merge.link.to_identifier_id} if merge.link else set()
        survivor_side = {
            i for i in members if i not in absorbed_side and (i in link_ends or members[i] <= merge.created_at)
        }
    if not absorbed_side or not survivor_side:
        raise IdentityActionError(f"merge {merge_id}: one side no longer holds any identifier, nothing to split")

    cut = domain.minimum_cut([(a, b) for _, a, b in links], absorbed_side, survivor_side)
    cut_ids = [links[i][0] for i in sorted(cut)]
    remaining_edges = [(a, b) for i, (_, a, b) in enumerate(links) if i not in cut]
    groups = domain.components(list(members), remaining_edges)

    def overlap(group, side):
        return len(group & side)

    remaining_group = max(groups, key=lambda g: (overlap(g, survivor_side), -min(g)))
    restored_group = max(
        (g for g in groups if g is not remaining_group), key=lambda g: (overlap(g, absorbed_side), -min(g))
    )
    restored = Profile.objects.select_for_update().get(pk=merge.absorbed_id)
    owners = {}  # identifier id -> profile id after the split
    split_off = []
    for group in groups:
        if group is remaining_group:
            target = root.pk
        elif group is restored_group:
            target = restored.pk
        else:  # connected to neither side once the cut is made: a profile of its own
            target = Profile.objects.create(created_at=now, updated_at=now).pk
            split_off.append(target)
        for identifier_id in group:
            owners[identifier_id] = target

    rejected = list(
        IdentityLink.objects.filter(pk__in=cut_ids).values(
            "id", "from_identifier_id", "to_identifier_id", "kind", "rule", "confidence", "evidence", "created_at"
        )
    )
    IdentityLink.objects.filter(pk__in=cut_ids).update(
        status=IdentityLink.REJECTED,
        reason=f"unmerged (merge {merge.pk})"[:300],
        reviewed_by=actor[:150],
        reviewed_at=now,
        review_note=reason[:500],
    )
    restored.status, restored.merged_into_id, restored.updated_at = Profile.ACTIVE, None, now
    restored.save(update_fields=["status", "merged_into", "updated_at"])

    moved = _move_rows_back(root.pk, owners, merge, restored.pk)
    _repoint_merged_profiles(root.pk, owners)
    merge.unmerged_at = now
    merge.save(update_fields=["unmerged_at"])
    for profile_id in {root.pk, restored.pk, *split_off}:
        profile_recompute(profile_id=profile_id)
    unmerge = Unmerge.objects.create(
        merge=merge,
        restored=restored,
        remaining=root,
        split_off=split_off,
        rejected_links=[{**row, "created_at": row["created_at"].isoformat()} for row in rejected],
        actor=actor[:150],
        reason=reason[:500],
        moved=moved,
        created_at=now,
    )
    logger.info(
        "merge_unmerged merge_id=%s restored_id=%s remaining_id=%s links_rejected=%s actor=%s",
        merge.pk,
        restored.pk,
        root.pk,
        len(cut_ids),
        actor,
    )
    # The reason is free text a person typed: it stays on the Unmerge row, not in the audit log.
    audit_record(
        actor=actor,
        action="merge.unmerge",
        target=merge,
        summary=f"Unmerged merge {merge.pk}: profile #{restored.pk} restored beside #{root.pk}",
        merge_id=merge.pk,
        unmerge_id=unmerge.pk,
        restored_id=restored.pk,
        remaining_id=root.pk,
        split_off=split_off,
        links_rejected=len(cut_ids),
    )
    return unmerge


def _move_rows_back(root_id: int, owners: dict[int, int], merge: Merge, restored_id: int) -> dict:
    """Identifiers go where their component went; events and trait values follow their identifier
    (rows without one follow the merge's record of what moved); consent records follow the raw
    event they came with. Returns the ids that left the root profile, per table."""
    moved = {"identifiers": [], "events": [], "trait_values": [], "consent_records": []}
    by_target: dict[int, list[int]] = {}
    for identifier_id, target in owners.items():
        if target != root_id:
            by_target.setdefault(target, []).append(identifier_id)
    recorded = merge.moved or {}
    for target, identifier_ids in by_target.items():
        for chunk in _ids_chunked(identifier_ids):
            moved["identifiers"].extend(chunk)
            Identifier.objects.filter(pk__in=chunk).update(profile_id=target)
    for name, model in (("events", Event), ("trait_values", TraitValue)):
        for target, identifier_ids in by_target.items():
            for chunk in _ids_chunked(identifier_ids):
                rows = model.objects.filter(profile_id=root_id, identifier_id__in=chunk)
                moved[name].extend(rows.values_list("id", flat=True))
                rows.update(profile_id=target)
        for chunk in _ids_chunked(recorded.get(name, [])):
            rows = model.objects.filter(profile_id=root_id, identifier_id__isnull=True, pk__in=chunk)
            moved[name].extend(rows.values_list("id", flat=True))
            rows.update(profile_id=restored_id)
    # Consent: where the events of the same raw event went; else where the merge record says.
    placed = set()
    consent_rows = list(ConsentRecord.objects.filter(profile_id=root_id).values_list("id", "raw_event_id"))
    raw_ids = sorted({raw_id for _, raw_id in consent_rows if raw_id})
    event_owner = {}
    for chunk in _ids_chunked(raw_ids):
        event_owner.update(Event.objects.filter(raw_event_id__in=chunk).values_list("raw_event_id", "profile_id"))
    recorded_consent = set(recorded.get("consent_records", []))
    moves: dict[int, list[int]] = {}
    for record_id, raw_id in consent_rows:
        target = event_owner.get(raw_id) if raw_id else None
        if target is None and record_id in recorded_consent:
            target = restored_id
        if target is not None and target != root_id:
            moves.setdefault(target, []).append(record_id)
            placed.add(record_id)
    for target, record_ids in moves.items():
        for chunk in _ids_chunked(record_ids):
            ConsentRecord.objects.filter(pk__in=chunk).update(profile_id=target)
            moved["consent_records"].extend(chunk)
    for name in moved:
        moved[name] = sorted(set(moved[name]))
    return moved


def _repoint_merged_profiles(root_id: int, owners: dict[int, int]) -> None:
    """A profile merged away earlier redirects to wherever most of what it brought now lives."""
    for profile_id in _merged_descendants(root_id):
        merge = Merge.objects.filter(absorbed_id=profile_id, unmerged_at__isnull=True).order_by("-created_at").first()
        if merge is None:
            continue
        homes = Counter(owners[i] for i in merge.moved.get("identifiers", []) if i in owners)
        if not homes:
            continue
        home = homes.most_common(1)[0][0]
        current = Profile.objects.filter(pk=profile_id).values_list("merged_into_id", flat=True).first()
        # Only repoint redirects that would now lead to the wrong side.
        if home != root_id and _resolves_to(current, root_id):
            Profile.objects.filter(pk=profile_id).update(merged_into_id=home)


def _resolves_to(profile_id: int | None, root_id: int) -> bool:
    seen = set()
    while profile_id is not None and profile_id not in seen:
        if profile_id == root_id:
            return True
        seen.add(profile_id)
        profile_id = (
            Profile.objects.filter(pk=profile_id, status=Profile.MERGED)
            .values_list("merged_into_id", flat=True)
            .first()
        )
    return False


def separations_between(profile_ids: set[int]) -> set[frozenset]:
    """Pairs of these profiles that a rejected link keeps apart (a reviewer's or an unmerge's)."""
    from identity.resolver import rejected_between

    return {frozenset((a, b)) for a, b, _evidence in rejected_between(sorted(profile_ids)) if a != b}

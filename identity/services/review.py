"""Review decisions on links (approve, reject) and links proposed between two profiles."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from cdp_site.audit import audit_record
from identity import domain
from identity.locks import identity_lock
from identity.models import Identifier, IdentifierType, IdentityLink, Merge
from identity.services.merges import IdentityActionError, profile_root, profiles_merge_locked, separations_between

logger = logging.getLogger(__name__)

REVIEWABLE = (IdentityLink.PENDING_REVIEW, IdentityLink.BLOCKED)


def _mark_reviewed(link: IdentityLink, *, status: str, actor: str, note: str) -> None:
    link.status = status
    link.reviewed_by, link.reviewed_at, link.review_note = actor[:150], timezone.now(), note[:500]


@transaction.atomic
def link_approve(*, link_id: int, actor: str, note: str = "") -> Merge | None:
    """A reviewer confirms a pending or blocked link: it becomes active and, when its two ends are
    in different profiles, the profiles merge (the older survives). Returns the merge, if any."""
    identity_lock()
    link = IdentityLink.objects.select_for_update().select_related("from_identifier", "to_identifier").get(pk=link_id)
    if link.status not in REVIEWABLE:
        raise IdentityActionError(f"link {link_id} is {link.get_status_display().lower()}, not waiting for review")
    ends = {profile_root(link.from_identifier.profile_id).pk, profile_root(link.to_identifier.profile_id).pk}
    _mark_reviewed(link, status=IdentityLink.ACTIVE, actor=actor, note=note)
    if len(ends) == 1:
        link.reason = ""
        link.save(update_fields=["status", "reason", "reviewed_by", "reviewed_at", "review_note"])
        audit_record(
            actor=actor,
            action="merge.approve",
            target=link,
            summary=f"Approved link {link.pk}; both ends already in profile #{ends.pop()}",
            link_id=link.pk,
            merge_id=None,
        )
        return None
    survivor, absorbed = sorted(ends)  # the older profile survives, so long-lived ids stay stable
    merge = profiles_merge_locked(
        survivor_id=survivor,
        absorbed_id=absorbed,
        link=link,
        rule=link.rule or "review",
        actor=actor,
        evidence={**(link.evidence or {}), "approved_by": actor, "note": note},
    )
    logger.info("link_approved link_id=%s merge_id=%s actor=%s", link.pk, merge.pk, actor)
    audit_record(
        actor=actor,
        action="merge.approve",
        target=link,
        summary=f"Approved link {link.pk}: profile #{absorbed} merged into #{survivor} (merge {merge.pk})",
        link_id=link.pk,
        merge_id=merge.pk,
        survivor_id=survivor,
        absorbed_id=absorbed,
    )
    return merge


@transaction.atomic
def link_reject(*, link_id: int, actor: str, note: str = "") -> IdentityLink:
    """A reviewer says the two ends are different people: the link is rejected and is never
    proposed again from the same evidence."""
    identity_lock()
    link = IdentityLink.objects.select_for_update().get(pk=link_id)
    if link.status not in REVIEWABLE:
        raise IdentityActionError(
            f"link {link_id} is {link.get_status_display().lower()}; "
            + ("unmerge its merge instead" if link.status == IdentityLink.ACTIVE else "nothing to decide")
        )
    _mark_reviewed(link, status=IdentityLink.REJECTED, actor=actor, note=note)
    link.save(update_fields=["status", "reviewed_by", "reviewed_at", "review_note"])
    logger.info("link_rejected link_id=%s actor=%s", link.pk, actor)
    audit_record(
        actor=actor,
        action="merge.reject",
        target=link,
        summary=f"Rejected link {link.pk}: the profiles stay apart",
        link_id=link.pk,
        profile_ids=sorted(
            set(
                Identifier.objects.filter(pk__in=[link.from_identifier_id, link.to_identifier_id]).values_list(
                    "profile_id", flat=True
                )
            )
        ),
    )
    return link


@dataclass(frozen=True)
class ProfileLinkOutcome:
    status: str  # merged, queued, blocked, skipped_rejected, already_linked, same_profile
    link_id: int | None = None
    merge_id: int | None = None


def _representative(profile_id: int) -> Identifier:
    """The identifier that stands for a profile in a profile-to-profile link: its most important."""
    identifier = (
        Identifier.objects.filter(profile_id=profile_id)
        .select_related("identifier_type")
        .order_by("-identifier_type__priority", "id")
        .first()
    )
    if identifier is None:
        raise IdentityActionError(f"profile {profile_id} holds no identifier to link")
    return identifier


def _type_counts(profile_id: int) -> Counter:
    return Counter(Identifier.objects.filter(profile_id=profile_id).values_list("identifier_type_id", flat=True))


@transaction.atomic
def profiles_link(
    *,
    profile_a_id: int,
    profile_b_id: int,
    kind: str,
    rule: str,
    confidence: float,
    evidence: dict,
    activate: bool,
    actor: str,
) -> ProfileLinkOutcome:
    """Propose that two profiles are one person (a probabilistic match, a manual link).

    activate=True makes the link active and merges, unless an identifier limit forbids it (then it
    is queued as a blocked conflict); activate=False queues it for review. A pair that a reviewer
    rejected or an unmerge separated is never proposed again automatically. A manual link (a person's
    decision) is written to the audit log; the matcher's proposals are not staff actions.
    """
    outcome = _profiles_link(
        profile_a_id=profile_a_id,
        profile_b_id=profile_b_id,
        kind=kind,
        rule=rule,
        confidence=confidence,
        evidence=evidence,
        activate=activate,
        actor=actor,
    )
    if kind == IdentityLink.MANUAL:
        audit_record(
            actor=actor,
            action="merge.link",
            target=IdentityLink.objects.get(pk=outcome.link_id) if outcome.link_id else None,
            summary=f"Linked profiles #{profile_a_id} and #{profile_b_id} by hand: {outcome.status}",
            profile_ids=sorted({profile_a_id, profile_b_id}),
            outcome=outcome.status,
            link_id=outcome.link_id,
            merge_id=outcome.merge_id,
        )
    return outcome


def _profiles_link(
    *,
    profile_a_id: int,
    profile_b_id: int,
    kind: str,
    rule: str,
    confidence: float,
    evidence: dict,
    activate: bool,
    actor: str,
) -> ProfileLinkOutcome:
    identity_lock()
    a, b = profile_root(profile_a_id).pk, profile_root(profile_b_id).pk
    if a == b:
        return ProfileLinkOutcome("same_profile")
    if separations_between({a, b}) & {frozenset((a, b))}:
        return ProfileLinkOutcome("skipped_rejected")
    ends = sorted([_representative(a).pk, _representative(b).pk])
    link = IdentityLink.objects.select_for_update().filter(from_identifier_id=ends[0], to_identifier_id=ends[1]).first()
    if link is not None and link.status == IdentityLink.REJECTED:
        return ProfileLinkOutcome("skipped_rejected", link.pk)
    if link is not None and link.status == IdentityLink.ACTIVE:
        return ProfileLinkOutcome("already_linked", link.pk)
    if link is not None and not activate:
        return ProfileLinkOutcome("queued", link.pk)  # already waiting for review
    rules = {t.id: t.as_rule() for t in IdentifierType.objects.all()}
    limit_reason = domain.would_exceed_limits(_type_counts(a), _type_counts(b), rules) if activate else None
    status = IdentityLink.BLOCKED if limit_reason else IdentityLink.ACTIVE if activate else IdentityLink.PENDING_REVIEW
    if link is None:
        link = IdentityLink(from_identifier_id=ends[0], to_identifier_id=ends[1], created_at=timezone.now())
    link.kind, link.rule, link.confidence, link.evidence = kind, rule[:100], confidence, evidence
    link.status, link.reason = status, (limit_reason or "")[:300]
    link.save()
    if status != IdentityLink.ACTIVE:
        return ProfileLinkOutcome("blocked" if limit_reason else "queued", link.pk)
    survivor, absorbed = min(a, b), max(a, b)
    merge = profiles_merge_locked(
        survivor_id=survivor, absorbed_id=absorbed, link=link, rule=rule, actor=actor, evidence=evidence
    )
    return ProfileLinkOutcome("merged", link.pk, merge.pk)

"""Deterministic identity resolution for a batch of observations.

Identifiers observed together become links; profiles are the connected components. The resolver
loads the identifiers a batch mentions in one query, decides every attach and merge in memory (so
a batch of hundreds of events costs a handful of queries, not queries per event), then writes.

Rules, by identifier role:
- canonical identifiers may join profiles: two profiles they connect are merged, unless the merge
  would push an identifier type past its per-profile limit (then the link is recorded as blocked);
- handles attach to a profile but never join two (a Stripe customer id shared by a family);
- anonymous identifiers join only into a known profile: an anonymous-only profile is absorbed by
  the known profile it meets, but a device already tied to one person never joins a second one.

The caller holds a lock that serialises resolution (processing takes it), so the state loaded at
the start of a batch cannot change under it.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from django.conf import settings
from django.db import connection
from django.db.models import Count, Q

from cdp_site.db import insert_rows, select_in, update_rows
from identity import domain
from identity.models import BlockedValue, Identifier, IdentifierType, IdentityLink, Merge

DETERMINISTIC_RULE = "co_observed"
ANONYMOUS_RULE = "anonymous_into_known"


@dataclass(eq=False)
class ProfileState:
    """A profile as the batch sees it: an existing row (id set) or one to create."""

    id: int | None = None
    counts: Counter = field(default_factory=Counter)  # identifiers per type id
    merged_into: ProfileState | None = None
    confidence: float = 1.0
    new_identifiers: list = field(default_factory=list)
    members: set = field(default_factory=set)  # ids of the existing profiles this state now holds


@dataclass(eq=False)
class IdentifierState:
    rule: domain.IdentifierRule
    normalised: str
    lookup_hash: str
    profile: ProfileState
    id: int | None = None
    source_id: int | None = None
    is_verified: bool = False
    first_seen_at: datetime | None = None
    last_seen_at: datetime | None = None
    changed: bool = False  # an existing row whose last_seen/verified needs writing
    is_new: bool = False  # created by this batch


@dataclass
class PlannedLink:
    a: IdentifierState
    b: IdentifierState
    status: str
    reason: str
    evidence: dict
    created_at: datetime
    confidence: float = 1.0  # deterministic: the identifiers were observed together


@dataclass
class PlannedMerge:
    survivor: ProfileState
    absorbed: ProfileState
    link: PlannedLink
    rule: str
    evidence: dict
    created_at: datetime
    moved_identifiers: list = field(default_factory=list)


@dataclass(frozen=True)
class Observed:
    type_slug: str
    value: object
    is_verified: bool = False


def find(profile: ProfileState) -> ProfileState:
    while profile.merged_into is not None:
        profile = profile.merged_into
    return profile


@lru_cache(maxsize=65536)
def _normalise_cached(normaliser: str, raw: str, region: str) -> str:
    return domain.normalise(normaliser, raw, default_region=region)


class BatchResolver:
    def __init__(self):
        types = list(IdentifierType.objects.all())
        self.rules = {t.slug: t.as_rule() for t in types}
        self.rules_by_id = {rule.id: rule for rule in self.rules.values()}
        self.blocked = {
            (type_id, value.lower())
            for type_id, value in BlockedValue.objects.values_list("identifier_type_id", "value")
        }
        self.region = settings.PHONE_DEFAULT_REGION
        self.identifiers: dict[tuple[int, str], IdentifierState] = {}
        self.profiles: dict[int, ProfileState] = {}
        self.new_profiles: list[ProfileState] = []
        self.links: list[PlannedLink] = []
        self.merges: list[PlannedMerge] = []
        self._linked_pairs: set[tuple[int, int]] = set()
        # Pairs of existing profiles a rejected link keeps apart, with the raw events behind the
        # rejected links: the same evidence proposes nothing, new evidence goes to review.
        self.separations: dict[frozenset, set] = {}
        self._hashes: dict[tuple[int, str], str] = {}
        # (type id, normalised value) of identifiers a deletion request tombstoned: never resolved.
        self.tombstoned: set[tuple[int, str]] = set()

    # -- reading -----------------------------------------------------------------------------

    def normalise(self, observed: Observed) -> tuple[domain.IdentifierRule, str] | None:
        """(rule, normalised value), or None for unknown types, invalid and blocked values."""
        rule = self.rules.get(observed.type_slug)
        if rule is None or observed.value is None or isinstance(observed.value, dict | list | bool):
            return None
        try:
            normalised = _normalise_cached(rule.normaliser, str(observed.value), self.region)
        except domain.InvalidIdentifier:
            return None
        lowered = normalised.lower()
        if (rule.id, lowered) in self.blocked or (None, lowered) in self.blocked:
            return None
        if (rule.id, normalised) in self.tombstoned:
            return None
        return rule, normalised

    def load_tombstones(self, keys: list[tuple[domain.IdentifierRule, str]]) -> set[tuple[int, str]]:
        """Which of these identifiers a deletion request tombstoned (keyed hashes, looked up in one
        query per 500); they are remembered, so this resolver never links or creates them."""
        from consent.models import Tombstone
        from consent.tombstones import tombstone_hash

        if not keys or not Tombstone.objects.exists():
            return set()
        by_hash = {tombstone_hash(rule.slug, normalised): (rule.id, normalised) for rule, normalised in set(keys)}
        hashes = sorted(by_hash)
        found = set()
        for start in range(0, len(hashes), 500):
            rows = Tombstone.objects.filter(key_hash__in=hashes[start : start + 500]).values_list("key_hash", flat=True)
            found |= {by_hash[key] for key in rows}
        self.tombstoned |= found
        return found

    def preload(self, keys: list[tuple[domain.IdentifierRule, str]]) -> None:
        """Load every identifier the batch mentions, their profiles and those profiles' counts."""
        wanted: dict[tuple[int, str], tuple[domain.IdentifierRule, str]] = {}
        for rule, normalised in keys:
            wanted[(rule.id, self._lookup_hash(rule, normalised))] = (rule, normalised)
        hashes = sorted({lookup_hash for _, lookup_hash in wanted})
        rows = select_in(
            Identifier,
            [
                "id",
                "identifier_type_id",
                "lookup_hash",
                "profile_id",
                "source_id",
                "is_verified",
                "last_seen_at",
            ],
            "lookup_hash",
            hashes,
        )
        profile_ids = sorted({row[3] for row in rows})
        for profile_id in profile_ids:
            self.profiles[profile_id] = ProfileState(id=profile_id, members={profile_id})
        self._load_separations(profile_ids)
        for profile_id, type_id, n in _type_counts(profile_ids):
            self.profiles[profile_id].counts[type_id] = n
        for identifier_id, type_id, lookup_hash, profile_id, source_id, is_verified, last_seen in rows:
            if (type_id, lookup_hash) not in wanted:
                continue
            rule, normalised = wanted[(type_id, lookup_hash)]
            self.identifiers[(type_id, lookup_hash)] = IdentifierState(
                rule=rule,
                normalised=normalised,
                lookup_hash=lookup_hash,
                profile=self.profiles[profile_id],
                id=identifier_id,
                source_id=source_id,
                is_verified=is_verified,
                last_seen_at=last_seen,
            )

    def _lookup_hash(self, rule: domain.IdentifierRule, normalised: str) -> str:
        """The keyed blind index of a value, computed once per batch (an HMAC per call)."""
        key = (rule.id, normalised)
        lookup_hash = self._hashes.get(key)
        if lookup_hash is None:
            from consent.vault import blind_index

            lookup_hash = self._hashes[key] = blind_index(rule.slug, normalised)
        return lookup_hash

    def _load_separations(self, profile_ids: list[int]) -> None:
        for a, b, evidence in rejected_between(profile_ids):
            if a != b:
                raw_event_id = (evidence or {}).get("raw_event_id")
                self.separations.setdefault(frozenset((a, b)), set()).add(raw_event_id)

    def _separation(self, a: ProfileState, b: ProfileState) -> set | None:
        """Raw event ids of the rejected links between two profiles, or None if nothing separates them."""
        found = None
        for x in a.members:
            for y in b.members:
                evidence = self.separations.get(frozenset((x, y)))
                if evidence is not None:
                    found = (found or set()) | evidence
        return found

    def _state_for(self, rule, normalised, *, source_id, is_verified, seen_at) -> IdentifierState:
        lookup_hash = self._lookup_hash(rule, normalised)
        key = (rule.id, lookup_hash)
        state = self.identifiers.get(key)
        if state is None:
            state = IdentifierState(
                rule=rule,
                normalised=normalised,
                lookup_hash=lookup_hash,
                profile=None,
                source_id=source_id,
                is_verified=is_verified,
                first_seen_at=seen_at,
                last_seen_at=seen_at,
            )
            self.identifiers[key] = state
            return state
        if seen_at > (state.last_seen_at or seen_at):
            state.last_seen_at, state.changed = seen_at, True
        if is_verified and not state.is_verified:
            state.is_verified, state.changed = True, True
        return state

    # -- deciding ----------------------------------------------------------------------------

    def observe(self, observed: list[Observed], *, source_id: int, seen_at: datetime, evidence: dict):
        """Resolve the identifiers of one event. Returns (profile state, primary identifier state),
        or (None, None) when no usable identifier is left."""
        states: list[IdentifierState] = []
        for item in observed:
            normalised = self.normalise(item)
            if normalised is None:
                continue
            rule, value = normalised
            state = self._state_for(rule, value, source_id=source_id, is_verified=item.is_verified, seen_at=seen_at)
            if state not in states:
                states.append(state)
        if not states:
            return None, None
        states.sort(key=lambda s: (-s.rule.priority, s.rule.slug))
        primary = states[0]
        # Links form a star around the anchor: an identifier already in the target profile, so
        # every link this observation adds connects to the component it joins.
        target, anchor = self._choose_target(states)
        if target is not None and primary.profile is None and self._over_limit(target, primary):
            # The identifier that names this person cannot join that profile (a second user_id
            # behind a shared family email): they are someone else, with a profile of their own.
            target, anchor = None, None
        observation_is_known = any(state.rule.role != domain.ANONYMOUS for state in states)
        if target is None:
            target = ProfileState()
            self.new_profiles.append(target)
            # Attach first, so the limits of any merge below see what this person brings.
            anchor = self._attach_new(states, target, anchor, primary, evidence, seen_at)
            self._join(states, target, anchor, observation_is_known, evidence, seen_at)
        else:
            target = self._join(states, target, anchor, observation_is_known, evidence, seen_at)
            self._attach_new(states, target, anchor, primary, evidence, seen_at)
        # The event belongs to the person its highest-priority identifier names: with two
        # user_ids sharing one email, that is the user_id's profile, not the email's.
        return find(primary.profile), primary

    def _over_limit(self, profile: ProfileState, state: IdentifierState) -> bool:
        limit = state.rule.limit_per_profile
        return limit is not None and profile.counts[state.rule.id] + 1 > limit

    def _join(self, states, target, anchor, observation_is_known, evidence, seen_at) -> ProfileState:
        """Join the profiles this observation connects, as the roles allow; returns the survivor."""
        for state in states:
            if state.profile is None:
                continue
            other = find(state.profile)
            if other is target:
                continue
            role = state.rule.role
            if role == domain.HANDLE:
                self._plan_link(
                    anchor, state, IdentityLink.BLOCKED, "handle identifiers never join two profiles", evidence, seen_at
                )
            elif role == domain.ANONYMOUS and (
                self.is_known(other) or not (observation_is_known or self.is_known(target))
            ):
                # A device already tied to a person never joins a second one (shared devices),
                # and two anonymous-only profiles never join each other.
                continue
            else:
                rule = ANONYMOUS_RULE if role == domain.ANONYMOUS else DETERMINISTIC_RULE
                target = self._merge(target, other, anchor, state, rule, evidence, seen_at)
        return target

    def _attach_new(self, states, target, anchor, primary, evidence, seen_at):
        """Attach identifiers seen for the first time, within the type limits; returns the anchor."""
        for state in states:
            if state.profile is not None:
                continue
            if self._over_limit(target, state):
                own = ProfileState()
                self.new_profiles.append(own)
                self._attach(state, own)
                limit = state.rule.limit_per_profile
                self._plan_link(
                    anchor or primary,
                    state,
                    IdentityLink.BLOCKED,
                    f"attaching would give the profile {limit + 1} {state.rule.slug} identifiers (limit {limit})",
                    evidence,
                    seen_at,
                )
                continue
            self._attach(state, target)
            if anchor is None:
                anchor = state
            else:
                self._plan_link(anchor, state, IdentityLink.ACTIVE, "", evidence, seen_at)
        return anchor

    def _choose_target(self, states: list[IdentifierState]) -> tuple[ProfileState | None, IdentifierState | None]:
        """The profile the observation joins, and the identifier that names it: the
        highest-priority canonical identifier's, else a handle's, else an anonymous one's."""
        names_someone = any(state.rule.role != domain.ANONYMOUS for state in states)
        for role in (domain.CANONICAL, domain.HANDLE, domain.ANONYMOUS):
            for state in states:
                if state.rule.role != role or state.profile is None:
                    continue
                if role == domain.ANONYMOUS and names_someone and self.is_known(find(state.profile)):
                    # A shared device: it belongs to someone else; this observation names a
                    # person of its own, so it must not join the device's owner.
                    continue
                return find(state.profile), state
        return None, None

    def is_known(self, profile: ProfileState) -> bool:
        return any(
            n > 0 and self.rules_by_id[type_id].role != domain.ANONYMOUS for type_id, n in profile.counts.items()
        )

    def _attach(self, state: IdentifierState, profile: ProfileState) -> None:
        state.profile = profile
        profile.counts[state.rule.id] += 1
        profile.new_identifiers.append(state)

    def _merge(self, target, other, primary, state, rule, evidence, seen_at) -> ProfileState:
        rejected_evidence = self._separation(target, other) if self.separations else None
        if rejected_evidence is not None:
            # An unmerge or a reviewer kept these apart: never re-merge automatically. The same
            # evidence again proposes nothing; new evidence asks a person.
            if evidence.get("raw_event_id") not in rejected_evidence:
                self._plan_link(
                    primary,
                    state,
                    IdentityLink.PENDING_REVIEW,
                    "new evidence joins profiles that were kept apart (unmerged or rejected)",
                    evidence,
                    seen_at,
                )
            return target
        reason = domain.would_exceed_limits(target.counts, other.counts, self.rules_by_id)
        if reason:
            self._plan_link(primary, state, IdentityLink.BLOCKED, reason, evidence, seen_at)
            return target
        link = self._plan_link(primary, state, IdentityLink.ACTIVE, "", evidence, seen_at, force=True)
        # The older profile survives, so long-lived ids stay stable; an anonymous profile never
        # absorbs a known one.
        survivor, absorbed = target, other
        if rule != ANONYMOUS_RULE and other.id is not None and (target.id is None or other.id < target.id):
            survivor, absorbed = other, target
        absorbed.merged_into = survivor
        survivor.counts.update(absorbed.counts)
        survivor.members |= absorbed.members
        survivor.confidence = min(survivor.confidence, absorbed.confidence, link.confidence)
        self.merges.append(
            PlannedMerge(
                survivor=survivor, absorbed=absorbed, link=link, rule=rule, evidence=evidence, created_at=seen_at
            )
        )
        return survivor

    def _plan_link(self, a, b, status, reason, evidence, seen_at, force=False) -> PlannedLink | None:
        if a is None or a is b:
            return None
        pair = (id(a), id(b)) if id(a) < id(b) else (id(b), id(a))
        if pair in self._linked_pairs and not force:
            return None
        self._linked_pairs.add(pair)
        link = PlannedLink(a=a, b=b, status=status, reason=reason[:300], evidence=evidence, created_at=seen_at)
        self.links.append(link)
        return link

    # -- results -----------------------------------------------------------------------------

    def touched_roots(self) -> list[ProfileState]:
        """Every surviving profile the batch touched (existing and new), each once."""
        seen, roots = set(), []
        for profile in [*self.profiles.values(), *self.new_profiles]:
            root = find(profile)
            if id(root) not in seen:
                seen.add(id(root))
                roots.append(root)
        return roots

    def write_identity(self, *, create_profiles) -> None:
        """Write new profiles (through the caller, who knows their field values), merges,
        identifiers and links. Afterwards every state has an id."""
        create_profiles([p for p in self.new_profiles])
        new_identifiers = [state for state in self.identifiers.values() if state.id is None]
        rows = [
            Identifier(
                identifier_type_id=state.rule.id,
                profile_id=find(state.profile).id,
                source_id=state.source_id,
                is_verified=state.is_verified,
                first_seen_at=state.first_seen_at,
                last_seen_at=state.last_seen_at,
                **Identifier.stored_values(state.rule, state.normalised, lookup_hash=state.lookup_hash),
            )
            for state in new_identifiers
        ]
        _insert_identifiers(new_identifiers, rows)
        update_rows(
            Identifier,
            ["last_seen_at", "is_verified"],
            [(s.id, s.last_seen_at, s.is_verified) for s in self.identifiers.values() if s.changed and s.id],
        )
        self._write_links()
        self._write_merges()

    def _write_links(self) -> None:
        """Every planned link in one statement (existing pairs are left as they are); the ids of
        the links this inserted come back for the Merge rows."""
        merge_rules = {id(merge.link): merge.rule for merge in self.merges}
        rows = []
        for link in self.links:
            low, high = sorted((link.a.id, link.b.id))
            rows.append(
                (
                    low,
                    high,
                    IdentityLink.DETERMINISTIC,
                    link.status,
                    link.confidence,
                    merge_rules.get(id(link), DETERMINISTIC_RULE),
                    link.evidence,
                    link.reason,
                    link.created_at,
                )
            )
        inserted = insert_rows(
            IdentityLink,
            [
                "from_identifier",
                "to_identifier",
                "kind",
                "status",
                "confidence",
                "rule",
                "evidence",
                "reason",
                "created_at",
            ],
            rows,
            ignore_conflicts=True,
            returning=["id", "from_identifier_id", "to_identifier_id"] if self.merges else None,
        )
        self._inserted_links = {(low, high): link_id for link_id, low, high in inserted}
        self._reopen_rejected_pairs()

    def _reopen_rejected_pairs(self) -> None:
        """A rejected pair observed together again in new evidence goes back to review (its row
        exists, so the insert above left it rejected)."""
        for link in self.links:
            if link.status != IdentityLink.PENDING_REVIEW:
                continue
            low, high = sorted((link.a.id, link.b.id))
            IdentityLink.objects.filter(
                from_identifier_id=low, to_identifier_id=high, status=IdentityLink.REJECTED
            ).exclude(evidence__raw_event_id=link.evidence.get("raw_event_id")).update(
                status=IdentityLink.PENDING_REVIEW, evidence=link.evidence, reason=link.reason[:300]
            )

    def _write_merges(self) -> None:
        from profiles.services.moves import profile_rows_move_many

        if not self.merges:
            return
        pairs = {tuple(sorted((merge.link.a.id, merge.link.b.id))): merge for merge in self.merges}
        # (id, status, confidence) per pair: inserted just now as planned, or there before.
        links = {pair: (link_id, IdentityLink.ACTIVE, 1.0) for pair, link_id in self._inserted_links.items()}
        links.update(_links_by_pair([pair for pair in pairs if pair not in links]))
        # A pair blocked earlier (the limits have changed since) is active now that it merged.
        reactivated = [link_id for link_id, status, _ in links.values() if status == IdentityLink.BLOCKED]
        if reactivated:
            IdentityLink.objects.filter(pk__in=reactivated).update(status=IdentityLink.ACTIVE, reason="")
        survivor_identifiers = self._identifiers_before_batch({merge.survivor.id for merge in self.merges})
        moved = profile_rows_move_many(moves=[(merge.absorbed.id, merge.survivor.id) for merge in self.merges])
        insert_rows(
            Merge,
            [
                "survivor",
                "absorbed",
                "link",
                "rule",
                "actor",
                "confidence",
                "evidence",
                "moved",
                "survivor_identifiers",
                "created_at",
            ],
            [
                (
                    merge.survivor.id,
                    merge.absorbed.id,
                    links[pair][0] if pair in links else None,
                    merge.rule,
                    f"rule:{merge.rule}",
                    links[pair][2] if pair in links else 1.0,
                    merge.evidence,
                    moved.get(merge.absorbed.id, {}),
                    survivor_identifiers.get(merge.survivor.id, []),
                    merge.created_at,
                )
                for pair, merge in ((tuple(sorted((m.link.a.id, m.link.b.id))), m) for m in self.merges)
            ],
        )

    def _identifiers_before_batch(self, profile_ids: set[int]) -> dict[int, list[int]]:
        """Per profile, the identifiers it held before this batch: one side of each merge, kept so
        an unmerge knows what to separate. Identifiers this batch created are left out."""
        created = {state.id for state in self.identifiers.values() if state.is_new}
        held: dict[int, list[int]] = {}
        for identifier_id, profile_id in sorted(select_in(Identifier, ["id", "profile_id"], "profile_id", profile_ids)):
            if identifier_id not in created:
                held.setdefault(profile_id, []).append(identifier_id)
        return held


def _type_counts(profile_ids: list[int]) -> list[tuple[int, int, int]]:
    """(profile, identifier type, count) for these profiles."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT profile_id, identifier_type_id, count(*) FROM identity_identifier "
                "WHERE profile_id = ANY(%b::bigint[]) GROUP BY 1, 2",
                [profile_ids],
            )
            return cursor.fetchall()
    counts = []
    for start in range(0, len(profile_ids), 900):
        counts.extend(
            Identifier.objects.filter(profile_id__in=profile_ids[start : start + 900])
            .values_list("profile_id", "identifier_type_id")
            .annotate(n=Count("id"))
        )
    return counts


def rejected_between(profile_ids: list[int]) -> list[tuple[int, int, dict]]:
    """(profile, profile, evidence) of the rejected links touching these profiles. Rejected links
    are few and have a partial index of their own, so this stays cheap however big the graph."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT a.profile_id, b.profile_id, l.evidence FROM identity_identitylink l "
                "JOIN identity_identifier a ON a.id = l.from_identifier_id "
                "JOIN identity_identifier b ON b.id = l.to_identifier_id "
                "WHERE l.status = 'rejected' "
                "AND (a.profile_id = ANY(%b::bigint[]) OR b.profile_id = ANY(%b::bigint[]))",
                [profile_ids, profile_ids],
            )
            return [
                (a, b, evidence if isinstance(evidence, dict) else json.loads(evidence)) for a, b, evidence in cursor
            ]
    found = []
    for start in range(0, len(profile_ids), 900):
        chunk = profile_ids[start : start + 900]
        found.extend(
            IdentityLink.objects.filter(status=IdentityLink.REJECTED)
            .filter(Q(from_identifier__profile_id__in=chunk) | Q(to_identifier__profile_id__in=chunk))
            .values_list("from_identifier__profile_id", "to_identifier__profile_id", "evidence")
        )
    return found


def _links_by_pair(pairs: list[tuple[int, int]]) -> dict[tuple[int, int], tuple[int, str, float]]:
    """(id, status, confidence) of the links between these (low, high) identifier pairs."""
    if not pairs:
        return {}
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT l.from_identifier_id, l.to_identifier_id, l.id, l.status, l.confidence "
                "FROM identity_identitylink l JOIN unnest(%b::bigint[], %b::bigint[]) AS p(low, high) "
                "ON l.from_identifier_id = p.low AND l.to_identifier_id = p.high",
                [[low for low, _ in pairs], [high for _, high in pairs]],
            )
            return {(low, high): (link_id, status, confidence) for low, high, link_id, status, confidence in cursor}
    wanted, found = set(pairs), {}
    lows = sorted({low for low, _ in pairs})
    for start in range(0, len(lows), 400):
        for low, high, link_id, status, confidence in IdentityLink.objects.filter(
            from_identifier_id__in=lows[start : start + 400]
        ).values_list("from_identifier_id", "to_identifier_id", "id", "status", "confidence"):
            if (low, high) in wanted:
                found[(low, high)] = (link_id, status, confidence)
    return found


def _insert_identifiers(states: list[IdentifierState], rows: list[Identifier]) -> None:
    """Insert new identifiers and give each state its id: one statement on PostgreSQL."""
    if connection.vendor != "postgresql":
        Identifier.objects.bulk_create(rows, batch_size=500)
        for state, row in zip(states, rows, strict=True):
            state.id, state.is_new = row.pk, True
        return
    names = [
        "identifier_type",
        "value",
        "encrypted_value",
        "lookup_hash",
        "profile",
        "source",
        "is_verified",
        "first_seen_at",
        "last_seen_at",
    ]
    inserted = insert_rows(
        Identifier,
        names,
        [
            (
                row.identifier_type_id,
                row.value,
                row.encrypted_value,
                row.lookup_hash,
                row.profile_id,
                row.source_id,
                row.is_verified,
                row.first_seen_at,
                row.last_seen_at,
            )
            for row in rows
        ],
        returning=["id", "identifier_type_id", "lookup_hash"],
    )
    ids = {(type_id, lookup_hash): identifier_id for identifier_id, type_id, lookup_hash in inserted}
    for state in states:
        state.id, state.is_new = ids[(state.rule.id, state.lookup_hash)], True

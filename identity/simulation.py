"""Identity simulation: resolve sample exports in memory, with draft rules, and report what would match.

Pure (no ORM): the caller passes the rules, the blocked values and the CSV rows. The resolution
mirrors identity.resolver.BatchResolver.observe, one CSV row standing for one event:
- canonical identifiers join profiles, unless the merge would push a type past its limit
  (domain.would_exceed_limits, the live check) -- a conflict;
- handles attach but never join two profiles -- a conflict when they would;
- anonymous identifiers join only into a known profile, never a device's owner into another person.
Profiles are a union-find over in-memory states; nothing is written anywhere.

"Seen in" differs from the live figure in one way: a value is seen in a source when any row of
that source carries it (the live graph only remembers the first provider and each event's primary
identifier), because here every row is at hand.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from functools import lru_cache

from identity import domain

MAX_ROWS_PER_FILE = 200_000
IGNORE = "ignore"
SAMPLE_MERGES_PER_RULE = 5
SAMPLE_CONFLICTS = 20
# The resolver's rule names, so simulated and live merges read the same.
DETERMINISTIC_RULE = "co_observed"
ANONYMOUS_RULE = "anonymous_into_known"
MERGE_LIMIT, ATTACH_LIMIT, HANDLE_JOIN = "merge_limit", "attach_limit", "handle_join"


class SimulationInvalid(ValueError):
    """Input the simulation cannot run on (mapping to an unknown type, an unreadable file...)."""


# -- inputs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DraftRule:
    slug: str
    role: str
    normaliser: str
    limit_per_profile: int | None
    priority: int = 50


@dataclass
class SourceInput:
    """One export: a name, its rows (header first, streamed) and column -> identifier type slug."""

    name: str
    rows: Iterable[list[str]]
    mapping: dict[str, str] = field(default_factory=dict)


def csv_rows(text_stream) -> Iterator[list[str]]:
    """Rows of a CSV text stream, read lazily (header included)."""
    try:
        yield from csv.reader(text_stream)
    except (csv.Error, UnicodeDecodeError) as error:
        raise SimulationInvalid(f"not a readable UTF-8 CSV: {error}") from error


def _column_key(column: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", column.strip().lower()).strip("_")


def column_mapping(header: list[str], explicit: dict[str, str], slugs: Iterable[str]) -> dict[str, str]:
    """Column -> type slug. Explicit entries win ("ignore" drops a column); a column named like a
    type (e.g. "Email", "user_id") maps to it."""
    slugs = set(slugs)
    unknown = sorted(f"{column} -> {slug}" for column, slug in explicit.items() if slug != IGNORE and slug not in slugs)
    if unknown:
        raise SimulationInvalid(f"unknown identifier types in the mapping: {', '.join(unknown)}")
    missing = sorted(set(explicit) - set(header))
    if missing:
        raise SimulationInvalid(f"mapped columns not in the file: {', '.join(missing)}")
    mapping = {}
    for column in header:
        slug = explicit.get(column) or (_column_key(column) if _column_key(column) in slugs else None)
        if slug and slug != IGNORE:
            mapping[column] = slug
    return mapping


def parse_mapping_text(text: str) -> dict[str, str]:
    """'Email Address = email' lines (or ':' as the separator) -> {column: slug}."""
    mapping = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        separator = "=" if "=" in line else ":"
        column, found, slug = line.rpartition(separator)
        if not found or not column.strip() or not slug.strip():
            raise SimulationInvalid(f"line {number}: write 'column = identifier type' (or 'column = ignore')")
        mapping[column.strip()] = slug.strip()
    return mapping


# -- report ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceReport:
    name: str
    mapping: dict[str, str]
    rows: int
    rows_resolved: int  # rows with at least one usable identifier
    invalid_values: int
    blocked_values: int
    truncated: bool
    profiles: int
    matched_profiles: int  # its profiles carrying a value seen in another source
    match_rate: float | None


@dataclass(frozen=True)
class PairReport:
    source: str
    other: str
    profiles: int  # profiles of `source`
    matched_profiles: int  # of those, the ones carrying a value seen in `other`
    match_rate: float | None


@dataclass(frozen=True)
class RowRef:
    source: str
    line: int  # row number in the file, the header being 1 (the line, unless a quoted value spans lines)
    identifiers: dict[str, str]  # slug -> normalised value, as resolved


@dataclass(frozen=True)
class MergeSample:
    rule: str
    identifier_type: str
    value: str
    row: RowRef  # the row that joined the two profiles
    other_row: RowRef  # the row that started the profile it joined


@dataclass(frozen=True)
class Conflict:
    kind: str  # merge_limit, attach_limit, handle_join
    identifier_type: str
    value: str
    reason: str
    row: RowRef  # the row that would have joined
    other_row: RowRef  # the row that started the profile it could not join


@dataclass(frozen=True)
class SimulationReport:
    sources: list[SourceReport]
    pairs: list[PairReport]
    profiles: int
    merges: int
    merges_by_rule: dict[str, int]
    merges_by_identifier_type: dict[str, int]
    conflicts: int
    conflicts_by_kind: dict[str, int]  # "kind:type" -> count
    conflict_samples: list[Conflict]
    merge_samples: list[MergeSample]
    warnings: list[str]

    def as_dict(self) -> dict:
        return asdict(self)


def rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


# -- resolution -----------------------------------------------------------------------------------


class _Profile:
    __slots__ = ("number", "parent", "counts", "origin", "rows_mask")

    def __init__(self, number, origin):
        self.number = number  # creation order: the older profile survives a merge, as live
        self.parent = None
        self.counts: Counter = Counter()  # identifiers per rule id
        self.origin = origin  # (source index, line, identifier states) of the row that started it
        self.rows_mask = 0  # bit per source whose rows were attributed here


class _Identifier:
    __slots__ = ("rule", "value", "profile", "first_source", "seen_mask")

    def __init__(self, rule, value, source_index):
        self.rule = rule
        self.value = value
        self.profile = None
        self.first_source = source_index
        self.seen_mask = 0


def _find(profile: _Profile) -> _Profile:
    root = profile
    while root.parent is not None:
        root = root.parent
    while profile.parent is not None and profile.parent is not root:  # path compression
        profile.parent, profile = root, profile.parent
    return root


@lru_cache(maxsize=65536)
def _normalise(normaliser: str, raw: str, region: str) -> str:
    return domain.normalise(normaliser, raw, default_region=region)


class Simulator:
    def __init__(self, rules: Iterable[DraftRule], *, blocked: Iterable[tuple[str | None, str]], region: str = "US"):
        self.rules = {
            rule.slug: domain.IdentifierRule(
                id=index,
                slug=rule.slug,
                role=rule.role,
                normaliser=rule.normaliser,
                limit_per_profile=rule.limit_per_profile,
                priority=rule.priority,
                is_pii=False,
            )
            for index, rule in enumerate(rules, start=1)
        }
        self.rules_by_id = {rule.id: rule for rule in self.rules.values()}
        self.blocked = {(slug, value.lower()) for slug, value in blocked}
        self.region = region
        self.identifiers: dict[tuple[str, str], _Identifier] = {}
        self.profiles: list[_Profile] = []
        self.source_names: list[str] = []
        self.merges_by_rule: Counter = Counter()
        self.merges_by_type: Counter = Counter()
        self.merge_samples: list[MergeSample] = []
        self.conflicts: Counter = Counter()
        self.conflict_samples: list[Conflict] = []
        self._blocked_pairs: set[tuple[int, int]] = set()
        self._row = None  # (source index, line, states) of the row being resolved

    # -- reading ---------------------------------------------------------------------------------

    def run(self, sources: list[SourceInput], *, max_rows: int = MAX_ROWS_PER_FILE) -> SimulationReport:
        names = [source.name for source in sources]
        if len(sources) < 2:
            raise SimulationInvalid("a simulation needs exports from two or more sources")
        if len(set(names)) != len(names):
            raise SimulationInvalid("each source needs its own name")
        tallies, warnings = [], []
        for index, source in enumerate(sources):
            self.source_names.append(source.name)
            tally = self._read(index, source, max_rows)
            tallies.append(tally)
            if tally["truncated"]:
                warnings.append(
                    f"{source.name}: only the first {max_rows:,} rows were simulated; the rest of the file was "
                    "not read. Use the identity_simulate command with --max-rows for larger files."
                )
        return self._report(tallies, warnings)

    def _read(self, index: int, source: SourceInput, max_rows: int) -> dict:
        rows = iter(source.rows)
        header = [column.strip() for column in next(rows, [])]
        if not header:
            raise SimulationInvalid(f"{source.name}: the file is empty")
        try:
            mapping = column_mapping(header, source.mapping, self.rules)
        except SimulationInvalid as error:
            raise SimulationInvalid(f"{source.name}: {error}") from error
        if not mapping:
            raise SimulationInvalid(f"{source.name}: no column maps to an identifier type")
        positions = [(header.index(column), self.rules[slug]) for column, slug in mapping.items()]
        tally = {"mapping": mapping, "rows": 0, "resolved": 0, "invalid": 0, "blocked": 0, "truncated": False}
        for line, row in enumerate(rows, start=2):
            if tally["rows"] >= max_rows:
                tally["truncated"] = True
                break
            if not row:
                continue  # a blank line is not a record
            tally["rows"] += 1
            values = []
            for position, rule in positions:
                raw = row[position].strip() if position < len(row) else ""
                if not raw:
                    continue
                try:
                    normalised = _normalise(rule.normaliser, raw, self.region)
                except domain.InvalidIdentifier:
                    tally["invalid"] += 1
                    continue
                lowered = normalised.lower()
                if (rule.slug, lowered) in self.blocked or (None, lowered) in self.blocked:
                    tally["blocked"] += 1
                    continue
                values.append((rule, normalised))
            if values:
                tally["resolved"] += 1
                self.observe(values, source_index=index, line=line)
        return tally

    # -- deciding (the resolver's rules) ----------------------------------------------------------

    def observe(self, values: list[tuple[domain.IdentifierRule, str]], *, source_index: int, line: int) -> None:
        bit = 1 << source_index
        states: list[_Identifier] = []
        for rule, normalised in values:
            state = self.identifiers.get((rule.slug, normalised))
            if state is None:
                state = self.identifiers[(rule.slug, normalised)] = _Identifier(rule, normalised, source_index)
            state.seen_mask |= bit
            if state not in states:
                states.append(state)
        states.sort(key=lambda s: (-s.rule.priority, s.rule.slug))
        self._row = (source_index, line, tuple(states))
        primary = states[0]
        target, anchor = self._choose_target(states)
        if target is not None and primary.profile is None and self._over_limit(target, primary):
            # The identifier naming this person cannot join that profile: someone else.
            target, anchor = None, None
        is_known = any(state.rule.role != domain.ANONYMOUS for state in states)
        if target is None:
            target = self._new_profile()
            anchor = self._attach_new(states, target, anchor, primary)
            self._join(states, target, anchor, is_known)
        else:
            target = self._join(states, target, anchor, is_known)
            self._attach_new(states, target, anchor, primary)
        _find(primary.profile).rows_mask |= bit

    def _new_profile(self) -> _Profile:
        profile = _Profile(len(self.profiles), self._row)
        self.profiles.append(profile)
        return profile

    def _over_limit(self, profile: _Profile, state: _Identifier) -> bool:
        limit = state.rule.limit_per_profile
        return limit is not None and profile.counts[state.rule.id] + 1 > limit

    def is_known(self, profile: _Profile) -> bool:
        return any(
            n > 0 and self.rules_by_id[rule_id].role != domain.ANONYMOUS for rule_id, n in profile.counts.items()
        )

    def _choose_target(self, states):
        names_someone = any(state.rule.role != domain.ANONYMOUS for state in states)
        for role in (domain.CANONICAL, domain.HANDLE, domain.ANONYMOUS):
            for state in states:
                if state.rule.role != role or state.profile is None:
                    continue
                if role == domain.ANONYMOUS and names_someone and self.is_known(_find(state.profile)):
                    continue  # a shared device: its owner is someone else
                return _find(state.profile), state
        return None, None

    def _join(self, states, target, anchor, is_known):
        for state in states:
            if state.profile is None:
                continue
            other = _find(state.profile)
            if other is target:
                continue
            role = state.rule.role
            if role == domain.HANDLE:
                self._conflict(anchor, state, other, HANDLE_JOIN, "handle identifiers never join two profiles")
            elif role == domain.ANONYMOUS and (self.is_known(other) or not (is_known or self.is_known(target))):
                continue
            else:
                rule = ANONYMOUS_RULE if role == domain.ANONYMOUS else DETERMINISTIC_RULE
                target = self._merge(target, other, anchor, state, rule)
        return target

    def _attach_new(self, states, target, anchor, primary):
        for state in states:
            if state.profile is not None:
                continue
            if self._over_limit(target, state):
                self._attach(state, self._new_profile())
                limit = state.rule.limit_per_profile
                reason = f"attaching would give the profile {limit + 1} {state.rule.slug} identifiers (limit {limit})"
                self._conflict(anchor or primary, state, target, ATTACH_LIMIT, reason)
                continue
            self._attach(state, target)
            if anchor is None:
                anchor = state
        return anchor

    @staticmethod
    def _attach(state: _Identifier, profile: _Profile) -> None:
        state.profile = profile
        profile.counts[state.rule.id] += 1

    def _merge(self, target, other, anchor, state, rule):
        reason = domain.would_exceed_limits(target.counts, other.counts, self.rules_by_id)
        if reason:
            self._conflict(anchor, state, other, MERGE_LIMIT, reason)
            return target
        # As live: the older profile survives; an anonymous profile never absorbs a known one.
        survivor, absorbed = target, other
        if rule != ANONYMOUS_RULE and other.number < target.number:
            survivor, absorbed = other, target
        absorbed.parent = survivor
        survivor.counts.update(absorbed.counts)
        self.merges_by_rule[rule] += 1
        self.merges_by_type[state.rule.slug] += 1
        if self.merges_by_rule[rule] <= SAMPLE_MERGES_PER_RULE:
            self.merge_samples.append(
                MergeSample(
                    rule=rule,
                    identifier_type=state.rule.slug,
                    value=state.value,
                    row=self._row_ref(self._row),
                    other_row=self._row_ref(other.origin),
                )
            )
        return survivor

    def _conflict(self, anchor, state, other, kind, reason):
        # One conflict per pair of identifiers, as live keeps one blocked link per pair.
        key = tuple(sorted((id(anchor), id(state))))
        if key in self._blocked_pairs:
            return
        self._blocked_pairs.add(key)
        self.conflicts[f"{kind}:{state.rule.slug}"] += 1
        if len(self.conflict_samples) < SAMPLE_CONFLICTS:
            self.conflict_samples.append(
                Conflict(
                    kind=kind,
                    identifier_type=state.rule.slug,
                    value=state.value,
                    reason=reason,
                    row=self._row_ref(self._row),
                    other_row=self._row_ref(other.origin),
                )
            )

    def _row_ref(self, row) -> RowRef:
        source_index, line, states = row
        return RowRef(
            source=self.source_names[source_index],
            line=line,
            identifiers={state.rule.slug: state.value for state in states},
        )

    def components(self) -> list[frozenset[tuple[str, str]]]:
        """The simulated profiles as sets of (type slug, normalised value): comparable with live."""
        members: dict[int, set] = {}
        for (slug, value), state in self.identifiers.items():
            members.setdefault(id(_find(state.profile)), set()).add((slug, value))
        return [frozenset(values) for values in members.values()]

    # -- report ----------------------------------------------------------------------------------

    def _report(self, tallies: list[dict], warnings: list[str]) -> SimulationReport:
        members: dict[int, int] = {}  # root id -> bit per source it belongs to
        carried: dict[int, int] = {}  # root id -> bit per source one of its values was seen in
        for state in self.identifiers.values():
            root = id(_find(state.profile))
            members[root] = members.get(root, 0) | (1 << state.first_source)
            carried[root] = carried.get(root, 0) | state.seen_mask
        for profile in self.profiles:
            if profile.rows_mask:
                root = id(_find(profile))
                members[root] = members.get(root, 0) | profile.rows_mask
        count = len(self.source_names)
        profiles, matched, pairs = Counter(), Counter(), Counter()
        for root, mask in members.items():
            seen = carried.get(root, 0)
            for index in range(count):
                bit = 1 << index
                if not mask & bit:
                    continue
                profiles[index] += 1
                if seen & ~bit:
                    matched[index] += 1
                for other in range(count):
                    if other != index and seen & (1 << other):
                        pairs[(index, other)] += 1
        names = self.source_names
        return SimulationReport(
            sources=[
                SourceReport(
                    name=names[index],
                    mapping=tally["mapping"],
                    rows=tally["rows"],
                    rows_resolved=tally["resolved"],
                    invalid_values=tally["invalid"],
                    blocked_values=tally["blocked"],
                    truncated=tally["truncated"],
                    profiles=profiles[index],
                    matched_profiles=matched[index],
                    match_rate=rate(matched[index], profiles[index]),
                )
                for index, tally in enumerate(tallies)
            ],
            pairs=[
                PairReport(
                    source=names[index],
                    other=names[other],
                    profiles=profiles[index],
                    matched_profiles=pairs[(index, other)],
                    match_rate=rate(pairs[(index, other)], profiles[index]),
                )
                for index in range(count)
                for other in range(count)
                if other != index
            ],
            profiles=len(members),
            merges=sum(self.merges_by_rule.values()),
            merges_by_rule=dict(sorted(self.merges_by_rule.items())),
            merges_by_identifier_type=dict(sorted(self.merges_by_type.items())),
            conflicts=sum(self.conflicts.values()),
            conflicts_by_kind=dict(sorted(self.conflicts.items())),
            conflict_samples=self.conflict_samples,
            merge_samples=self.merge_samples,
            warnings=warnings,
        )


def simulate(
    sources: list[SourceInput],
    *,
    rules: Iterable[DraftRule],
    blocked: Iterable[tuple[str | None, str]] = (),
    region: str = "US",
    max_rows: int = MAX_ROWS_PER_FILE,
) -> SimulationReport:
    return Simulator(rules, blocked=blocked, region=region).run(sources, max_rows=max_rows)

"""Pure identity rules: normalisers and the roles of identifier types. No ORM here."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import phonenumbers

EMAIL = "email"
PHONE = "phone"
EXACT = "exact"
NORMALISERS = ((EMAIL, "Email (trimmed, lower case)"), (PHONE, "Phone (E.164)"), (EXACT, "Exact (trimmed)"))

CANONICAL = "canonical"
HANDLE = "handle"
ANONYMOUS = "anonymous"
ROLES = (
    (CANONICAL, "Canonical: may join profiles"),
    (HANDLE, "Handle: attaches, never joins two profiles"),
    (ANONYMOUS, "Anonymous: joins only into a known profile"),
)

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class InvalidIdentifier(ValueError):
    """A value that cannot be normalised into an identifier of its type."""


def normalise_email(raw: str) -> str:
    value = unicodedata.normalize("NFKC", str(raw)).strip().lower()
    if value.startswith("mailto:"):
        value = value[len("mailto:") :]
    if not _EMAIL_RE.match(value):
        raise InvalidIdentifier(f"not an email address: {raw!r}")
    return value


def normalise_phone(raw: str, default_region: str = "US") -> str:
    text = str(raw).strip()
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else default_region)
    except phonenumbers.NumberParseException as error:
        raise InvalidIdentifier(f"not a phone number: {raw!r}") from error
    if not phonenumbers.is_possible_number(number):
        raise InvalidIdentifier(f"not a possible phone number: {raw!r}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_exact(raw) -> str:
    value = str(raw).strip()
    if not value:
        raise InvalidIdentifier("empty identifier")
    if len(value) > 255:
        raise InvalidIdentifier("identifier longer than 255 characters")
    return value


def normalise(normaliser: str, raw, *, default_region: str = "US") -> str:
    if raw is None:
        raise InvalidIdentifier("missing value")
    if normaliser == EMAIL:
        return normalise_email(raw)
    if normaliser == PHONE:
        return normalise_phone(raw, default_region)
    return normalise_exact(raw)


@dataclass(frozen=True)
class IdentifierRule:
    """What resolution needs to know about an identifier type."""

    id: int
    slug: str
    role: str
    normaliser: str
    limit_per_profile: int | None
    priority: int
    is_pii: bool


def would_exceed_limits(
    counts_a: dict[int, int], counts_b: dict[int, int], rules: dict[int, IdentifierRule]
) -> str | None:
    """Why merging two profiles with these identifier counts per type breaks a limit, or None.

    Counts are per identifier type id; limits are per profile (two different user_ids, say).
    """
    for type_id in sorted(set(counts_a) | set(counts_b)):
        rule = rules[type_id]
        if rule.limit_per_profile is None:
            continue
        total = counts_a.get(type_id, 0) + counts_b.get(type_id, 0)
        if total > rule.limit_per_profile:
            return f"merge would give the profile {total} {rule.slug} identifiers (limit {rule.limit_per_profile})"
    return None


class DisjointSets:
    """Union-find with path halving over hashable nodes; the smaller root wins a union, so
    representatives are stable (the lowest id of a component)."""

    def __init__(self, nodes):
        self.parent = {node: node for node in nodes}

    def __contains__(self, node) -> bool:
        return node in self.parent

    def root(self, node):
        parent = self.parent
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    def union(self, a, b) -> bool:
        """Join the sets of a and b; False when they were already one."""
        root_a, root_b = self.root(a), self.root(b)
        if root_a == root_b:
            return False
        self.parent[max(root_a, root_b)] = min(root_a, root_b)
        return True


def components(nodes, edges) -> list[set]:
    """Connected components of an undirected graph (small: one profile's identifiers)."""
    sets = DisjointSets(nodes)
    for a, b in edges:
        sets.union(a, b)
    groups: dict = {}
    for node in sets.parent:
        groups.setdefault(sets.root(node), set()).add(node)
    return sorted(groups.values(), key=min)


def minimum_cut(edges: list[tuple[int, int]], sources: set, sinks: set) -> set[int]:
    """Indexes of the fewest edges whose removal disconnects every source from every sink.

    Unit capacities, Edmonds-Karp: an unmerge cuts as few links as it must to separate the two
    sides of a merge, so evidence that only one side holds is kept. Empty when already apart.
    """
    if sources & sinks:
        raise ValueError("a node cannot be on both sides of a cut")
    capacity: dict[tuple, int] = {}
    neighbours: dict = {}
    for a, b in edges:
        if a == b:
            continue
        for u, v in ((a, b), (b, a)):
            capacity[(u, v)] = capacity.get((u, v), 0) + 1
            neighbours.setdefault(u, set()).add(v)
    source, sink = ("source",), ("sink",)
    unbounded = len(edges) + 1
    for node in sources:
        capacity[(source, node)] = unbounded
        neighbours.setdefault(source, set()).add(node)
        neighbours.setdefault(node, set()).add(source)
    for node in sinks:
        capacity[(node, sink)] = unbounded
        neighbours.setdefault(node, set()).add(sink)
        neighbours.setdefault(sink, set()).add(node)

    def residual(u, v):
        return capacity.get((u, v), 0)

    while True:
        previous, queue = {source: None}, [source]
        while queue and sink not in previous:
            next_queue = []
            for u in queue:
                for v in neighbours.get(u, ()):
                    if v not in previous and residual(u, v) > 0:
                        previous[v] = u
                        next_queue.append(v)
            queue = next_queue
        if sink not in previous:
            break
        v = sink
        while previous[v] is not None:
            u = previous[v]
            capacity[(u, v)] = residual(u, v) - 1
            capacity[(v, u)] = residual(v, u) + 1
            v = u
    # Nodes still reachable from the source side; the cut is every edge leaving them.
    reachable = set(previous)
    return {i for i, (a, b) in enumerate(edges) if (a in reachable) != (b in reachable)}


def bottleneck_confidence(nodes, links: list[tuple[int, int, float]]) -> float:
    """The lowest confidence of the links holding a component together: the weakest edge of a
    maximum spanning tree (a weak link that stronger ones make redundant holds nothing)."""
    sets = DisjointSets(nodes)
    lowest, joined = 1.0, 1
    for a, b, confidence in sorted(links, key=lambda link: -link[2]):
        if a in sets and b in sets and sets.union(a, b):
            lowest, joined = min(lowest, confidence), joined + 1
            if joined == len(sets.parent):
                break
    return lowest

"""The identity invariants DESIGN.md lists, checked against the database."""

from collections import defaultdict

from identity.models import Identifier, IdentityLink
from profiles.models import Event, Profile


def identity_tables_reset() -> None:
    """Empty every table the pipeline writes: hypothesis runs many examples in one test database."""
    from consent.models import ConsentRecord
    from identity.models import IdentityLink, Merge, Unmerge
    from profiles.models import RawEvent, TraitValue

    Unmerge.objects.all().delete()
    Merge.objects.all().delete()
    IdentityLink.objects.all().delete()
    Event.objects.all().delete()
    from consent.guards import privacy_purge

    with privacy_purge():  # the append-only guard refuses plain deletes
        ConsentRecord.objects.all().delete()
    TraitValue.objects.all().delete()
    RawEvent.objects.all().delete()
    Identifier.objects.all().delete()
    Profile.objects.update(merged_into=None)
    Profile.objects.all().delete()


def identity_invariant_violations() -> list[str]:
    problems = []
    active = set(Profile.objects.filter(status=Profile.ACTIVE).values_list("id", flat=True))
    members = defaultdict(set)
    for identifier_id, profile_id in Identifier.objects.values_list("id", "profile_id"):
        if profile_id not in active:
            problems.append(f"identifier {identifier_id} belongs to inactive profile {profile_id}")
        members[profile_id].add(identifier_id)
    orphan_events = Event.objects.exclude(profile_id__in=active).count()
    if orphan_events:
        problems.append(f"{orphan_events} events belong to inactive profiles")
    owner = {i: p for p, ids in members.items() for i in ids}
    neighbours = defaultdict(set)
    for a, b in IdentityLink.objects.filter(status=IdentityLink.ACTIVE).values_list(
        "from_identifier_id", "to_identifier_id"
    ):
        if owner[a] != owner[b]:
            problems.append(f"active link {a}-{b} crosses profiles {owner[a]} and {owner[b]}")
        neighbours[a].add(b)
        neighbours[b].add(a)
    for profile_id, ids in members.items():
        start = next(iter(ids))
        seen, stack = {start}, [start]
        while stack:
            for other in neighbours[stack.pop()]:
                if other not in seen:
                    seen.add(other)
                    stack.append(other)
        if seen != ids:
            problems.append(f"profile {profile_id}: identifiers {sorted(ids - seen)} not connected over active links")
    return problems

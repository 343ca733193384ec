from dataclasses import dataclass

import pytest

from consent.vault import blind_index
from identity.models import Identifier, IdentityLink
from profiles.models import Event, Profile
from profiles.processing import raw_events_process
from tests.profiles.processing.conftest import event


@dataclass
class Graph:
    """A small identity graph built by processing real events.

    Profile a: anonymous_id d1 (seen first, alone), then user_id u1 and an email (links d1-u1, u1-email).
    Profile b: user_id u2 and mindbody m2, joined by a merge that absorbed profile c (link u2-m2).
    """

    ids: dict[str, Identifier]
    a: Profile
    b: Profile
    c: Profile
    events: dict[str, Event]

    def link(self, x: str, y: str) -> IdentityLink:
        low, high = sorted((self.ids[x].pk, self.ids[y].pk))
        return IdentityLink.objects.get(from_identifier_id=low, to_identifier_id=high)


@pytest.fixture
def graph(send) -> Graph:
    sent = {
        "e0": send(event("page.viewed", ids=[("anonymous_id", "d1")])),
        "e1": send(event("page.viewed", ids=[("user_id", "u1"), ("anonymous_id", "d1")])),
        "e2": send(event("page.viewed", ids=[("user_id", "u1"), ("email", "A@Example.com")])),
        "e3": send(event("page.viewed", ids=[("user_id", "u2")])),
        "e4": send(event("page.viewed", ids=[("mindbody_client_id", "m2")])),
        "e5": send(event("page.viewed", ids=[("user_id", "u2"), ("mindbody_client_id", "m2")])),
    }
    # One event per batch: e4 gets a profile of its own before e5 merges it.
    result = raw_events_process(batch_size=1)
    assert result.processed == 6
    ids = {i.value: i for i in Identifier.objects.exclude(value="")}
    ids["email"] = Identifier.objects.get(lookup_hash=blind_index("email", "a@example.com"))
    events = {name: Event.objects.get(raw_event=raw) for name, raw in sent.items()}
    a, b = ids["u1"].profile, ids["u2"].profile
    assert ids["d1"].profile == a and ids["email"].profile == a and ids["m2"].profile == b
    c = Profile.objects.get(status=Profile.MERGED)
    assert c.merged_into_id == b.pk
    return Graph(ids=ids, a=a, b=b, c=c, events=events)

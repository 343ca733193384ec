"""A small identity graph whose figures are known exactly.

Sources shop, booking, web. Active profiles:
  P1  email ada (verified, shop), user_id u1 (booking), anonymous_id a1 (web); an event from web carries a1
  P2  email bob (shop), stripe_customer_id cus_2 (verified handle, shop); an event from booking, no identifier
  P3  phone (verified, booking); an event from shop carries it
  P4  anonymous_id a4 (verified, web)
  P6  no identifiers; an event from web, no identifier
and P5, deleted, still holding a verified email from shop: inactive profiles count nowhere.
"""

from datetime import UTC, datetime, timedelta

import pytest

from identity.models import Identifier, IdentifierType, IdentityLink, Merge, Unmerge
from profiles.models import Event, Profile, RawEvent, Source

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BLOCKED_USER_ID = "merge would give the profile 2 user_id identifiers (limit 1)"
BLOCKED_HANDLE = "handle identifiers never join two profiles"


class Graph:
    def __init__(self):
        self.sources = {
            slug: Source.objects.create(name=name, slug=slug, kind=Source.CSV)
            for slug, name in (("shop", "Shop"), ("booking", "Booking"), ("web", "Web"))
        }
        self.profiles = {}
        self.identifiers = {}
        self._raw = 0

    def profile(self, key, status=Profile.ACTIVE):
        self.profiles[key] = Profile.objects.create(status=status, created_at=NOW, updated_at=NOW)
        return self.profiles[key]

    def identifier(self, key, profile, type_slug, value, source, verified=False):
        identifier_type = IdentifierType.objects.get(slug=type_slug)
        self.identifiers[key] = Identifier.objects.create(
            identifier_type=identifier_type,
            profile=self.profiles[profile],
            source=self.sources[source],
            is_verified=verified,
            first_seen_at=NOW,
            last_seen_at=NOW,
            **Identifier.stored_values(identifier_type.as_rule(), value),
        )
        return self.identifiers[key]

    def event(self, profile, source, identifier=None):
        self._raw += 1
        raw = RawEvent.objects.create(
            source=self.sources[source], external_id=f"e{self._raw}", received_at=NOW, payload={}, status="processed"
        )
        return Event.objects.create(
            profile=self.profiles[profile],
            source=self.sources[source],
            raw_event=raw,
            type="page.viewed",
            occurred_at=NOW,
            received_at=NOW,
            identifier=self.identifiers.get(identifier),
        )

    def link(self, a, b, status, reason="", reviewed=False, age_hours=1):
        low, high = sorted((self.identifiers[a].pk, self.identifiers[b].pk))
        return IdentityLink.objects.create(
            from_identifier_id=low,
            to_identifier_id=high,
            status=status,
            reason=reason,
            rule="co_observed",
            created_at=NOW - timedelta(hours=age_hours),
            reviewed_at=NOW if reviewed else None,
        )

    def merge(self, survivor, absorbed, rule, unmerged=False):
        merge = Merge.objects.create(
            survivor=self.profiles[survivor],
            absorbed=self.profiles[absorbed],
            rule=rule,
            actor=f"rule:{rule}",
            created_at=NOW - timedelta(days=1),
            unmerged_at=NOW if unmerged else None,
        )
        if unmerged:
            Unmerge.objects.create(
                merge=merge,
                restored=self.profiles[absorbed],
                remaining=self.profiles[survivor],
                actor="gina",
                created_at=NOW,
            )
        return merge


@pytest.fixture
def graph(db):
    g = Graph()
    for key in ("P1", "P2", "P3", "P4", "P6"):
        g.profile(key)
    g.profile("P5", status=Profile.DELETED)
    g.identifier("ada", "P1", "email", "ada@example.com", "shop", verified=True)
    g.identifier("u1", "P1", "user_id", "u1", "booking")
    g.identifier("a1", "P1", "anonymous_id", "a1", "web")
    g.identifier("bob", "P2", "email", "bob@example.com", "shop")
    g.identifier("cus_2", "P2", "stripe_customer_id", "cus_2", "shop", verified=True)
    g.identifier("phone", "P3", "phone", "+14155550100", "booking", verified=True)
    g.identifier("a4", "P4", "anonymous_id", "a4", "web", verified=True)
    g.identifier("carl", "P5", "email", "carl@example.com", "shop", verified=True)
    g.event("P1", "web", identifier="a1")
    g.event("P2", "booking")
    g.event("P3", "shop", identifier="phone")
    g.event("P6", "web")
    g.merge("P1", "P5", "co_observed")
    g.merge("P2", "P5", "co_observed", unmerged=True)
    g.merge("P1", "P4", "anonymous_into_known")
    g.merge("P3", "P6", "manual")
    g.link("u1", "bob", IdentityLink.BLOCKED, BLOCKED_USER_ID, age_hours=3)
    g.link("ada", "bob", IdentityLink.BLOCKED, BLOCKED_USER_ID, reviewed=True, age_hours=30)
    g.link("cus_2", "ada", IdentityLink.BLOCKED, BLOCKED_HANDLE, age_hours=1)
    g.link("phone", "bob", IdentityLink.PENDING_REVIEW, age_hours=5)
    g.link("phone", "ada", IdentityLink.PENDING_REVIEW, reviewed=True, age_hours=50)
    g.link("a4", "ada", IdentityLink.REJECTED, reviewed=True, age_hours=60)
    g.link("ada", "u1", IdentityLink.ACTIVE, age_hours=70)
    return g

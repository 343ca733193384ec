from decimal import Decimal

import pytest

from consent.models import ConsentRecord
from identity.models import Identifier, IdentityLink, Merge
from profiles.models import Event, Profile, RawEvent, SchemaDrift
from profiles.processing import raw_events_process, raw_events_replay
from profiles.selectors import profile_resolve
from profiles.sources import source_create
from tests.profiles.processing.conftest import event

pytestmark = pytest.mark.django_db


def profile_of(type_slug, value):
    from identity.selectors import identifier_find

    return identifier_find(type_slug=type_slug, raw_value=value).profile


def test_events_sharing_an_email_become_one_profile(send):
    send(event(ids=[("email", "Ada@Example.com"), ("user_id", "u1")], traits={"first_name": "Ada"}))
    send(event(ids=[("email", " ada@example.COM "), ("phone", "+44 20 7946 0958")]))

    result = raw_events_process()

    assert (result.processed, result.quarantined, result.failed, result.events) == (2, 0, 0, 2)
    assert Profile.objects.filter(status=Profile.ACTIVE).count() == 1
    profile = profile_of("phone", "+442079460958")
    assert profile == profile_of("user_id", "u1") == profile_of("email", "ADA@example.com")
    assert profile.clear_traits == {"first_name": "Ada"}
    assert set(profile.identifiers.values_list("identifier_type__slug", flat=True)) == {"email", "user_id", "phone"}
    assert Event.objects.filter(profile=profile).count() == 2
    assert set(RawEvent.objects.values_list("status", flat=True)) == {RawEvent.PROCESSED}


def test_pii_identifiers_are_encrypted_with_a_blind_index(send):
    send(event(ids=[("email", "grace@example.com"), ("user_id", "g1")]))
    raw_events_process()

    email = Identifier.objects.get(identifier_type__slug="email")
    assert email.value == ""
    assert "grace" not in email.encrypted_value and email.encrypted_value
    assert email.display_value == "grace@example.com"
    assert len(email.lookup_hash) == 64
    user_id = Identifier.objects.get(identifier_type__slug="user_id")
    assert (user_id.value, user_id.encrypted_value) == ("g1", "")


def test_a_link_between_two_profiles_merges_them_with_an_audit_row(send):
    send(event(ids=[("email", "a@example.com")], traits={"city": "Paris"}, at="2026-01-01T10:00:00+00:00"))
    send(event(ids=[("phone", "+14155550100")], traits={"city": "Lyon"}, at="2026-01-02T10:00:00+00:00"))
    raw_events_process()
    first, second = profile_of("email", "a@example.com"), profile_of("phone", "+14155550100")
    assert first != second

    bridge = send(event(ids=[("email", "a@example.com"), ("phone", "+1 415 555 0100")], at="2026-01-03T10:00:00+00:00"))
    raw_events_process()

    merge = Merge.objects.get()
    assert (merge.survivor_id, merge.absorbed_id) == (first.pk, second.pk)
    assert merge.evidence["raw_event_id"] == bridge.pk
    assert merge.rule == "co_observed" and merge.confidence == 1.0
    assert len(merge.moved["identifiers"]) == 1 and len(merge.moved["events"]) == 1
    assert merge.link.status == IdentityLink.ACTIVE
    survivor = Profile.objects.get(pk=first.pk)
    absorbed = Profile.objects.get(pk=second.pk)
    assert (absorbed.status, absorbed.merged_into_id) == (Profile.MERGED, first.pk)
    assert profile_resolve(profile_id=second.pk) == survivor
    assert survivor.events.count() == 3
    # Same priority and not verified: the most recent observation wins.
    assert survivor.traits["city"] == "Lyon"


def test_merge_past_an_identifier_limit_is_blocked_with_the_reason(send):
    send(event(ids=[("user_id", "u1"), ("email", "shared@example.com")]))
    send(event(ids=[("user_id", "u2"), ("phone", "+14155550101")]))
    raw_events_process()

    send(event(ids=[("phone", "+14155550101"), ("email", "shared@example.com")]))
    raw_events_process()

    assert Merge.objects.count() == 0
    assert Profile.objects.filter(status=Profile.ACTIVE).count() == 2
    blocked = IdentityLink.objects.get(status=IdentityLink.BLOCKED)
    assert "user_id" in blocked.reason and "limit 1" in blocked.reason


def test_a_second_user_id_sharing_an_email_stays_a_separate_person(send):
    send(event(ids=[("user_id", "u1"), ("email", "family@example.com")]))
    raw_events_process()
    send(event(type_="page.viewed", ids=[("user_id", "u2"), ("email", "family@example.com")]))
    raw_events_process()

    u1, u2 = profile_of("user_id", "u1"), profile_of("user_id", "u2")
    assert u1 != u2
    assert profile_of("email", "family@example.com") == u1
    assert Event.objects.get(type="page.viewed").profile == u2
    assert IdentityLink.objects.filter(status=IdentityLink.BLOCKED).count() == 1


def test_blocked_values_never_link_anything(send):
    send(event(ids=[("email", "test@test.com"), ("user_id", "a")]))
    send(event(ids=[("email", "TEST@test.com"), ("user_id", "b")]))
    send(event(ids=[("phone", "0000000000"), ("user_id", "c")]))
    raw_events_process()

    assert Profile.objects.filter(status=Profile.ACTIVE).count() == 3
    assert not Identifier.objects.filter(identifier_type__slug__in=["email", "phone"]).exists()


def test_handles_attach_but_never_join_two_profiles(send):
    send(event(ids=[("email", "p1@example.com"), ("stripe_customer_id", "cus_1")]))
    send(event(ids=[("email", "p2@example.com")]))
    raw_events_process()
    send(event(ids=[("email", "p2@example.com"), ("stripe_customer_id", "cus_1")]))
    raw_events_process()

    assert Merge.objects.count() == 0
    assert profile_of("stripe_customer_id", "cus_1") == profile_of("email", "p1@example.com")
    assert IdentityLink.objects.get(status=IdentityLink.BLOCKED).reason == "handle identifiers never join two profiles"


def test_anonymous_profile_joins_the_known_profile_it_meets(send):
    send(event(type_="page.viewed", ids=[("anonymous_id", "dev-1")]))
    raw_events_process()
    anonymous = profile_of("anonymous_id", "dev-1")
    assert anonymous.lifecycle == Profile.ANONYMOUS
    send(event(ids=[("email", "k@example.com"), ("user_id", "k")]))
    raw_events_process()

    send(event(type_="profile.identified", ids=[("anonymous_id", "dev-1"), ("user_id", "k")]))
    raw_events_process()

    known = profile_of("user_id", "k")
    assert profile_of("anonymous_id", "dev-1") == known
    merge = Merge.objects.get()
    assert (merge.survivor_id, merge.absorbed_id, merge.rule) == (known.pk, anonymous.pk, "anonymous_into_known")
    assert known.events.filter(type="page.viewed").count() == 1
    assert Profile.objects.get(pk=known.pk).lifecycle == Profile.LEAD


def test_a_shared_device_never_joins_two_known_people(send):
    send(event(ids=[("anonymous_id", "tablet"), ("user_id", "mum")]))
    raw_events_process()
    send(event(type_="page.viewed", ids=[("anonymous_id", "tablet"), ("user_id", "kid")]))
    raw_events_process()

    assert profile_of("user_id", "mum") != profile_of("user_id", "kid")
    assert profile_of("anonymous_id", "tablet") == profile_of("user_id", "mum")
    assert Event.objects.get(type="page.viewed").profile == profile_of("user_id", "kid")
    assert Merge.objects.count() == 0


def test_two_anonymous_profiles_never_join_each_other(send):
    send(event(type_="page.viewed", ids=[("anonymous_id", "d1")]))
    send(event(type_="page.viewed", ids=[("anonymous_id", "d2")]))
    raw_events_process()
    send(event(type_="page.viewed", ids=[("anonymous_id", "d1"), ("anonymous_id", "d2")]))
    raw_events_process()

    assert profile_of("anonymous_id", "d1") != profile_of("anonymous_id", "d2")
    assert Merge.objects.count() == 0


def test_verified_trait_is_never_overwritten_by_an_inferred_one(send):
    other, _ = source_create(name="High priority", kind="csv", priority=90)
    send(
        event(
            ids=[("user_id", "v")],
            traits={"email": "v@old.example"},
            verified_traits=["email"],
            at="2026-01-01T00:00:00+00:00",
        )
    )
    send(
        event(
            ids=[("user_id", "v")], traits={"email": "v@new.example", "city": "Oslo"}, at="2026-02-01T00:00:00+00:00"
        ),
        source=other,
    )
    send(event(ids=[("user_id", "v")], traits={"city": "Bergen"}, at="2026-03-01T00:00:00+00:00"))
    raw_events_process()

    profile = profile_of("user_id", "v")
    assert profile.clear_traits["email"] == "v@old.example"
    assert profile.trait_provenance["email"]["is_verified"] is True
    # Source priority beats recency.
    assert profile.traits["city"] == "Oslo"
    assert profile.trait_provenance["city"]["source_id"] == other.pk
    assert profile.trait_values.count() == 4


def test_lifetime_revenue_is_payments_minus_refunds(send):
    props = {"payment_id": "p", "amount": 50.0, "currency": "EUR"}
    send(event("payment.succeeded", ids=[("user_id", "r")], properties=props, revenue="50.00", currency="EUR"))
    send(event("payment.succeeded", ids=[("user_id", "r")], properties=props, revenue="30.00", currency="EUR"))
    refund = {"refund_id": "re", "amount": 30.0, "currency": "EUR"}
    send(event("refund.issued", ids=[("user_id", "r")], properties=refund, revenue="-30.00", currency="EUR"))
    raw_events_process()

    profile = profile_of("user_id", "r")
    assert profile.lifetime_revenue == Decimal("50.00")
    assert profile.lifecycle == Profile.CUSTOMER


def test_first_last_seen_and_consent_summary(send):
    send(event(ids=[("user_id", "c")], at="2026-01-05T00:00:00+00:00", consent=[("email_marketing", True)]))
    send(event(ids=[("user_id", "c")], at="2026-01-09T00:00:00+00:00", consent=[("email_marketing", False)]))
    send(event(ids=[("user_id", "c")], at="2026-01-07T00:00:00+00:00", consent=[("sms_marketing", True)]))
    raw_events_process()

    profile = profile_of("user_id", "c")
    assert profile.first_seen_at.isoformat() == "2026-01-05T00:00:00+00:00"
    assert profile.last_seen_at.isoformat() == "2026-01-09T00:00:00+00:00"
    assert profile.consent["email_marketing"]["is_granted"] is False
    assert profile.consent["sms_marketing"]["is_granted"] is True
    assert ConsentRecord.objects.filter(profile=profile).count() == 3


def test_contract_failure_quarantines_with_the_reason_and_replay_recovers(send):
    from profiles.models import EventContract

    raw = send(event("payment.succeeded", ids=[("user_id", "q")], properties={"payment_id": "p1", "amount": "12"}))
    raw_events_process()

    raw.refresh_from_db()
    assert raw.status == RawEvent.QUARANTINED
    assert "'amount' must be number" in raw.error and "'currency' is missing" in raw.error
    assert not Profile.objects.exists() and not Event.objects.exists()

    # The fix: relax the contract; then replay.
    EventContract.objects.filter(event_type="payment.succeeded").update(
        required={"payment_id": "string"}, optional={"amount": "string"}
    )
    assert raw_events_replay(raw_event_ids=[raw.pk]) == 1
    raw.refresh_from_db()
    assert (raw.status, raw.error) == (RawEvent.PROCESSED, "")
    assert Event.objects.get().properties["amount"] == "12"


def test_naive_timestamp_is_a_contract_violation(send):
    raw = send(event("page.viewed", at="2026-01-01T10:00:00", ids=[("user_id", "n")]))
    raw_events_process()
    raw.refresh_from_db()
    assert raw.status == RawEvent.QUARANTINED and "timezone-aware" in raw.error


def test_mapping_errors_quarantine_and_mapper_bugs_fail_without_blocking_others(send):
    bad = send(fail="payment without an amount")
    broken = send(crash="boom")
    good = send(event(ids=[("user_id", "ok")]))
    result = raw_events_process()

    assert (result.processed, result.quarantined, result.failed) == (1, 1, 1)
    statuses = dict(RawEvent.objects.values_list("pk", "status"))
    assert statuses == {bad.pk: "quarantined", broken.pk: "failed", good.pk: "processed"}
    assert "payment without an amount" in RawEvent.objects.get(pk=bad.pk).error
    assert "RuntimeError: boom" in RawEvent.objects.get(pk=broken.pk).error


def test_events_with_no_usable_identifier_are_quarantined(send):
    raw = send(event(ids=[("email", "not-an-email"), ("phone", "null")]))
    raw_events_process()
    raw.refresh_from_db()
    assert raw.status == RawEvent.QUARANTINED and raw.error.startswith("identity: no usable identifier")


def test_unknown_properties_are_counted_as_schema_drift(send):
    props = {"url": "https://x.example/a", "experiment": "b", "variant": 2}
    send(event("page.viewed", ids=[("user_id", "d")], properties=props))
    send(event("page.viewed", ids=[("user_id", "d")], properties={"experiment": "c"}))
    raw_events_process()

    drift = {(d.event_type, d.property_name): d.occurrences for d in SchemaDrift.objects.all()}
    assert drift == {("page.viewed", "experiment"): 2, ("page.viewed", "variant"): 1}


def test_processing_twice_applies_nothing_twice(send):
    send(event(ids=[("user_id", "twice")]))
    assert raw_events_process().processed == 1
    assert raw_events_process().claimed == 0
    assert Event.objects.count() == 1


def test_a_batch_merging_inside_itself_keeps_every_event(send):
    # Three events in one batch: two people, then the bridge, then more activity.
    send(event(ids=[("email", "x@example.com")], type_="page.viewed"))
    send(event(ids=[("phone", "+14155550102")], type_="page.viewed"))
    send(event(ids=[("email", "x@example.com"), ("phone", "+14155550102")], type_="page.viewed"))
    send(event(ids=[("phone", "+14155550102")], type_="page.viewed"))
    raw_events_process()

    profile = profile_of("email", "x@example.com")
    assert profile == profile_of("phone", "+14155550102")
    assert profile.status == Profile.ACTIVE
    assert Event.objects.filter(profile=profile).count() == 4
    assert Profile.objects.filter(status=Profile.ACTIVE).count() == 1
    assert Merge.objects.count() == 1


def test_a_repeated_trait_value_refreshes_its_time_without_a_new_row(send):
    send(event(ids=[("user_id", "rep")], traits={"plan": "gold"}, at="2026-01-01T00:00:00+00:00"))
    send(event(ids=[("user_id", "rep")], traits={"plan": "gold"}, at="2026-01-05T00:00:00+00:00"))
    raw_events_process()
    send(event(ids=[("user_id", "rep")], traits={"plan": "gold"}, at="2026-01-09T00:00:00+00:00"))
    send(event(ids=[("user_id", "rep")], traits={"plan": "silver"}, at="2026-01-10T00:00:00+00:00"))
    raw_events_process()

    profile = profile_of("user_id", "rep")
    assert list(profile.trait_values.order_by("observed_at").values_list("value", flat=True)) == ["gold", "silver"]
    assert profile.traits["plan"] == "silver"
    assert profile.trait_provenance["plan"]["observed_at"] == "2026-01-10T00:00:00+00:00"


def test_a_new_person_on_a_shared_device_gets_their_own_profile(send):
    send(event(ids=[("anonymous_id", "family-tablet"), ("user_id", "mum"), ("email", "mum@example.com")]))
    raw_events_process()
    # Someone new signs in on the same tablet: nothing of theirs may land on mum's profile.
    send(
        event(
            "profile.identified",
            ids=[("anonymous_id", "family-tablet"), ("user_id", "kid"), ("email", "kid@example.com")],
        )
    )
    raw_events_process()

    mum, kid = profile_of("user_id", "mum"), profile_of("user_id", "kid")
    assert mum != kid
    assert profile_of("email", "kid@example.com") == kid
    assert profile_of("anonymous_id", "family-tablet") == mum
    assert Event.objects.get(type="profile.identified").profile == kid
    assert set(mum.identifiers.values_list("identifier_type__slug", flat=True)) == {"anonymous_id", "user_id", "email"}


def test_a_family_member_sharing_an_email_keeps_their_own_identifiers(send):
    send(event(ids=[("user_id", "parent"), ("email", "family@example.com"), ("phone", "+14155550130")]))
    raw_events_process()
    send(
        event(
            "profile.identified",
            ids=[
                ("user_id", "child"),
                ("email", "family@example.com"),
                ("phone", "+14155550131"),
                ("anonymous_id", "child-phone"),
            ],
        )
    )
    raw_events_process()

    parent, child = profile_of("user_id", "parent"), profile_of("user_id", "child")
    assert parent != child
    assert profile_of("phone", "+14155550131") == child
    assert profile_of("anonymous_id", "child-phone") == child
    assert profile_of("email", "family@example.com") == parent
    blocked = IdentityLink.objects.get(status=IdentityLink.BLOCKED)
    assert "user_id" in blocked.reason


def test_a_payload_purged_by_retention_is_not_replayed(send):
    raw = send({"type": "nope", "at": "2026-01-01T00:00:00Z"})
    RawEvent.objects.filter(pk=raw.pk).update(status=RawEvent.QUARANTINED, payload={"_purged": {"at": "2026-06-01"}})
    assert raw_events_replay(raw_event_ids=[raw.pk]) == 0
    raw.refresh_from_db()
    assert raw.status == RawEvent.QUARANTINED

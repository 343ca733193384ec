"""Random sequences of events over small identifier pools: the identity invariants always hold
and no event is lost or duplicated, however the batches fall."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profiles.models import Event, RawEvent
from profiles.processing import raw_events_process
from tests.identity.invariants import identity_invariant_violations, identity_tables_reset
from tests.profiles.processing.conftest import event

POOLS = {
    "email": [f"p{i}@example.com" for i in range(6)] + ["P0@Example.com ", "test@test.com"],
    "phone": ["+14155550110", "+14155550111", "(415) 555-0112", "+14155550113"],
    "user_id": ["u1", "u2", "u3"],
    "anonymous_id": ["d1", "d2", "d3", "d4"],
    "stripe_customer_id": ["cus_1", "cus_2"],
}

identifier = st.sampled_from(sorted(POOLS)).flatmap(lambda t: st.tuples(st.just(t), st.sampled_from(POOLS[t])))
observation = st.lists(identifier, min_size=1, max_size=4)


@pytest.mark.django_db
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(observation, min_size=1, max_size=6), min_size=1, max_size=4))
def test_identity_invariants_hold_for_any_sequence(send, batches):
    identity_tables_reset()

    sent = 0
    for batch in batches:
        for ids in batch:
            send(event("page.viewed", ids=ids, traits={"seen": len(ids)}))
            sent += 1
        raw_events_process(batch_size=3)
        assert identity_invariant_violations() == []

    processed = RawEvent.objects.filter(status=RawEvent.PROCESSED).count()
    quarantined = RawEvent.objects.filter(status=RawEvent.QUARANTINED).count()
    assert processed + quarantined == sent
    assert Event.objects.count() == processed
    assert Event.objects.values("raw_event").distinct().count() == processed

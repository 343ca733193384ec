"""The compiler on the real database (SQLite and PostgreSQL): exact profile sets, one query, and the reference."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profiles.models import Profile
from segments.compiler import SegmentCycleError, profile_matches, segment_queryset
from segments.domain import validate_definition
from segments.reference import load_profile_data, reference_matches
from tests.segments.dataset import NOW, build_dataset

pytestmark = pytest.mark.django_db

SEGMENTS = {
    "gold": {"trait": "plan", "op": "eq", "value": "gold"},
    "gold_email": {"all": [{"segment": "gold"}, {"identifier": "email"}]},
}


def resolve(slug):
    return SEGMENTS[slug]


@pytest.fixture
def dataset():
    return build_dataset()


def matching(dataset, definition) -> set[str]:
    names = {pk: name for name, pk in dataset.items()}
    ids = segment_queryset(definition, now=NOW, resolve_segment=resolve).values_list("id", flat=True)
    return {names[pk] for pk in ids}


def trait(key, op, value=None, **extra):
    return {"trait": key, "op": op, **({} if value is None else {"value": value}), **extra}


CASES = [
    (trait("plan", "eq", "gold"), {"ana", "dan", "ivy"}),
    (trait("plan", "neq", "gold"), {"ben", "cara", "fay", "gus", "hal", "jon"}),
    (trait("age", "eq", 30), {"ana"}),
    (trait("age", "eq", 30.0), {"ana"}),
    (trait("age", "eq", "30"), {"ben"}),
    (trait("age", "eq", True), {"fay"}),
    (trait("is_member", "eq", True), {"ana"}),
    (trait("is_member", "eq", 1), {"ben"}),
    (trait("is_member", "eq", False), {"dan"}),
    (trait("plan", "in", ["gold", "bronze"]), {"ana", "dan", "ivy", "hal"}),
    (trait("age", "in", [30, "30"]), {"ana", "ben"}),
    (trait("age", "gt", 18), {"ana", "dan", "jon"}),
    (trait("age", "gte", 18), {"ana", "dan", "ivy", "jon"}),
    (trait("age", "lt", 0), {"gus"}),
    (trait("age", "lte", 0), {"gus", "hal"}),
    (trait("score", "gte", 4.5), {"ana", "jon"}),
    (trait("city", "contains", "berlin"), {"ana", "ben", "ivy"}),
    (trait("city", "contains", "MÜN"), {"fay"}),
    (trait("tags", "contains", "vip"), {"ana", "ben"}),
    (trait("tags", "contains", 2), {"fay"}),
    (trait("tags", "contains", "3"), {"fay"}),
    (trait("tags", "contains", 3), set()),
    (trait("nick", "contains", "%"), {"gus", "hal"}),
    (trait("nick", "contains", "_"), {"gus"}),
    (trait("nick", "exists"), {"gus", "hal"}),
    (trait("nick", "exists", True), {"gus", "hal"}),
    (trait("nick", "exists", False), {"ana", "ben", "cara", "dan", "fay", "ivy", "jon"}),
    (trait("signup", "before", "2026-01-01"), {"jon"}),
    (trait("signup", "before", "2026-01-01T01:00:00Z"), {"hal", "jon"}),
    (trait("signup", "after", "2026-05-01"), {"ana", "fay", "ivy"}),
    (trait("signup", "after", "2026-01-10T08:59:59+02:00"), {"ana", "ben", "fay", "ivy"}),
    (trait("signup", "within_last_days", 7), {"fay"}),
    (trait("signup", "within_last_days", 8), {"ana", "fay"}),
    (trait("first name", "eq", "Dan"), {"dan"}),
    (trait("a.b", "eq", 1), {"dan"}),
    ({"event": "order.completed"}, {"ana", "ben", "dan", "fay", "gus", "hal", "jon"}),
    ({"event": "order.completed", "within_last_days": 1}, {"ana", "ben", "jon"}),
    (
        {"event": "order.completed", "where": [{"property": "total", "op": "gte", "value": 50}]},
        {"ana", "ben", "gus", "jon"},
    ),
    ({"event": "order.completed", "where": [{"property": "coupon", "op": "exists"}]}, {"ana"}),
    ({"event": "order.completed", "count": {"op": "gte", "value": 2}}, {"ben", "dan", "jon"}),
    ({"event": "order.completed", "count": {"op": "gt", "value": 2}}, {"dan"}),
    ({"event": "order.completed", "count": {"op": "lt", "value": 1}}, {"cara", "ivy"}),
    ({"event": "order.completed", "count": {"op": "eq", "value": 0}}, {"cara", "ivy"}),
    ({"event": "order.completed", "count": {"op": "lte", "value": 1}}, {"ana", "cara", "fay", "gus", "hal", "ivy"}),
    ({"event": "order.completed", "sum": {"property": "total", "op": "gte", "value": 100}}, {"ben", "jon"}),
    (
        {"event": "order.completed", "sum": {"property": "total", "op": "lt", "value": 20}},
        {"cara", "fay", "hal", "ivy"},
    ),
    ({"event": "order.completed", "sum": {"property": "total", "op": "eq", "value": 30.5}}, {"dan"}),
    (
        {
            "event": "product.viewed",
            "where": [{"property": "sku", "op": "eq", "value": "A1"}, {"property": "price", "op": "exists"}],
        },
        {"ana", "gus", "ivy"},
    ),
    ({"event": "product.viewed", "where": [{"property": "price", "op": "gt", "value": 10}]}, {"ana", "gus"}),
    (
        {"event": "product.viewed", "where": [{"property": "sku", "op": "in", "value": ["B2", "C3"]}]},
        {"ben", "fay", "ivy"},
    ),
    ({"event": "page.viewed", "where": [{"property": "tags", "op": "contains", "value": "a"}]}, {"fay"}),
    ({"event": "page.viewed", "where": [{"property": "path", "op": "neq", "value": "/pricing"}]}, set()),
    ({"not": {"event": "product.viewed"}}, {"cara", "jon"}),
    (
        {"sequence": [{"event": "product.viewed"}, {"event": "order.completed"}], "within_hours": 2},
        {"ana", "fay", "gus", "hal"},
    ),
    (
        {
            "sequence": [{"event": "product.viewed"}, {"event": "order.completed"}],
            "within_hours": 2,
            "then": "present",
            "within_last_days": 1,
        },
        {"ana"},
    ),
    (
        {"sequence": [{"event": "product.viewed"}, {"event": "order.completed"}], "within_hours": 2, "then": "absent"},
        {"ben", "hal", "ivy"},
    ),
    (
        {
            "sequence": [
                {"event": "product.viewed", "where": [{"property": "sku", "op": "eq", "value": "B2"}]},
                {"event": "order.completed"},
            ],
            "within_hours": 2,
            "then": "absent",
        },
        {"ben", "ivy"},
    ),
    (
        {"sequence": [{"event": "product.viewed"}, {"event": "order.completed"}], "within_hours": 3.5},
        {"ana", "ben", "fay", "gus", "hal"},
    ),
    ({"consent": "email_marketing"}, {"ana", "fay", "ivy"}),
    ({"consent": "email_marketing", "granted": True}, {"ana", "fay", "ivy"}),
    ({"consent": "email_marketing", "granted": False}, {"ben"}),
    ({"consent": "sms_marketing"}, {"dan", "fay"}),
    ({"identifier": "email"}, {"ana", "dan", "fay", "ivy"}),
    ({"identifier": "phone"}, {"ben", "fay"}),
    ({"not": {"identifier": "stripe_customer"}}, {"ana", "ben", "cara", "fay", "gus", "ivy", "jon"}),
    ({"merge_confidence": {"op": "gte", "value": 0.9}}, {"ana", "cara", "dan", "hal"}),
    ({"merge_confidence": {"op": "lt", "value": 0.6}}, {"fay", "jon"}),
    ({"merge_confidence": {"op": "gt", "value": 0.95}}, {"ana", "hal"}),
    ({"merge_confidence": {"op": "lte", "value": 0.5}}, {"fay", "jon"}),
    ({"segment": "gold"}, {"ana", "dan", "ivy"}),
    ({"all": [{"segment": "gold_email"}, {"not": {"trait": "city", "op": "eq", "value": "Berlin"}}]}, {"dan"}),
    ({"any": [trait("age", "lt", 0), {"consent": "sms_marketing"}]}, {"dan", "fay", "gus"}),
    (
        {"not": {"any": [trait("age", "lt", 0), {"consent": "sms_marketing"}]}},
        {"ana", "ben", "cara", "hal", "ivy", "jon"},
    ),
    ({"all": [trait("plan", "eq", "gold"), {"not": trait("age", "gt", 20)}]}, {"ivy"}),
]


@pytest.mark.parametrize(("definition", "expected"), CASES, ids=[str(i) for i in range(len(CASES))])
def test_each_condition_matches_exactly_the_expected_profiles(dataset, definition, expected):
    assert validate_definition(definition, event_types=None, identifier_types=None, segments=SEGMENTS) == []
    assert matching(dataset, definition) == expected
    # The reference evaluator agrees on every hand-written case too.
    profiles = Profile.objects.filter(pk__in=dataset.values())
    assert {
        name
        for name, pk in dataset.items()
        if reference_matches(load_profile_data(profiles.get(pk=pk)), definition, now=NOW, resolve_segment=resolve)
    } == expected


def test_a_definition_is_one_sql_statement(dataset, django_assert_num_queries):
    definition = {
        "all": [
            {"segment": "gold_email"},
            {"event": "order.completed", "count": {"op": "lt", "value": 5}},
            {"event": "order.completed", "sum": {"property": "total", "op": "gte", "value": 0}},
            {
                "sequence": [{"event": "product.viewed"}, {"event": "order.completed"}],
                "within_hours": 2,
                "then": "absent",
            },
            {"any": [{"consent": "email_marketing"}, trait("signup", "within_last_days", 30)]},
        ]
    }
    queryset = segment_queryset(definition, now=NOW, resolve_segment=resolve)
    with django_assert_num_queries(1):
        ids = list(queryset.values_list("id", flat=True))
    assert set(ids) == {dataset["ivy"]}


def test_profile_matches_uses_the_same_query(dataset, django_assert_num_queries):
    definition = {"consent": "email_marketing"}
    with django_assert_num_queries(1):
        assert profile_matches(dataset["ana"], definition, now=NOW, resolve_segment=resolve) is True
    assert profile_matches(dataset["ben"], definition, now=NOW, resolve_segment=resolve) is False
    # Merged profiles never match, even when their data would.
    assert profile_matches(dataset["eve"], definition, now=NOW, resolve_segment=resolve) is False


def test_a_cycle_that_slipped_past_validation_fails_loudly():
    loop = {"a": {"segment": "b"}, "b": {"any": [{"segment": "a"}]}}
    with pytest.raises(SegmentCycleError):
        segment_queryset({"segment": "a"}, now=NOW, resolve_segment=loop.__getitem__)


# -- random definitions against the reference evaluator -------------------------------------------------

KEYS = ["plan", "age", "tags", "city", "signup", "score", "is_member", "nick", "first name", "missing"]
SCALARS = st.sampled_from(["gold", "Gold", "30", "vip", "Berlin", "A1", 0, 1, 2, 18, 30, 4.5, -2, True, False])
NUMBERS = st.sampled_from([-2, 0, 1, 4, 4.5, 18, 20, 30, 50, 99.5, 1000])
DATES = st.sampled_from(["2024-02-29", "2026-01-01", "2026-01-10T07:00:00Z", "2026-05-25T00:00:00+00:00", "2026-05-31"])
TEXTS = st.sampled_from(["berlin", "VIP", "g", "%", "_", "a", "1", "Ü"])


def comparison(ops):
    op = st.sampled_from(ops)

    def value_for(name):
        if name in ("eq", "neq"):
            return SCALARS
        if name == "in":
            return st.lists(SCALARS, min_size=1, max_size=3)
        if name == "contains":
            return st.one_of(TEXTS, SCALARS.filter(lambda value: value != ""))
        if name == "exists":
            return st.sampled_from([True, False])
        if name in ("before", "after"):
            return DATES
        if name == "within_last_days":
            return st.integers(1, 200)
        return NUMBERS

    return op.flatmap(lambda name: value_for(name).map(lambda value: {"op": name, "value": value}))


TRAIT_CONDITIONS = st.builds(
    lambda key, rest: {"trait": key, **rest},
    st.sampled_from(KEYS),
    comparison(
        ["eq", "neq", "in", "contains", "exists", "gt", "gte", "lt", "lte", "before", "after", "within_last_days"]
    ),
)
EVENT_TYPES = st.sampled_from(["order.completed", "product.viewed", "page.viewed"])
PROPERTY_FILTERS = st.lists(
    st.builds(
        lambda key, rest: {"property": key, **rest},
        st.sampled_from(["total", "sku", "price", "tags", "coupon"]),
        comparison(["eq", "neq", "in", "contains", "exists", "gt", "gte", "lt", "lte"]),
    ),
    max_size=2,
)
THRESHOLDS = st.builds(
    lambda op, value: {"op": op, "value": value}, st.sampled_from(["eq", "gt", "gte", "lt", "lte"]), st.integers(0, 3)
)


@st.composite
def event_conditions(draw):
    condition = {"event": draw(EVENT_TYPES)}
    if where := draw(PROPERTY_FILTERS):
        condition["where"] = where
    if draw(st.booleans()):
        condition["within_last_days"] = draw(st.sampled_from([1, 2, 30, 365]))
    aggregate = draw(st.sampled_from(["none", "count", "sum"]))
    if aggregate == "count":
        condition["count"] = draw(THRESHOLDS)
    elif aggregate == "sum":
        condition["sum"] = {"property": "total", **draw(THRESHOLDS), "value": draw(NUMBERS)}
    return condition


@st.composite
def sequence_conditions(draw):
    condition = {
        "sequence": [{"event": draw(EVENT_TYPES)}, {"event": draw(EVENT_TYPES)}],
        "within_hours": draw(st.sampled_from([0.5, 1, 2, 3, 48])),
        "then": draw(st.sampled_from(["present", "absent"])),
    }
    if where := draw(PROPERTY_FILTERS):
        condition["sequence"][0]["where"] = where
    if draw(st.booleans()):
        condition["within_last_days"] = draw(st.sampled_from([1, 2, 30]))
    return condition


LEAVES = st.one_of(
    TRAIT_CONDITIONS,
    event_conditions(),
    sequence_conditions(),
    st.builds(
        lambda purpose, is_granted: {"consent": purpose, "granted": is_granted},
        st.sampled_from(["email_marketing", "sms_marketing", "analytics"]),
        st.booleans(),
    ),
    st.builds(lambda slug: {"identifier": slug}, st.sampled_from(["email", "phone", "stripe_customer"])),
    st.builds(
        lambda op, value: {"merge_confidence": {"op": op, "value": value}},
        st.sampled_from(["gt", "gte", "lt", "lte"]),
        st.sampled_from([0.3, 0.5, 0.6, 0.9, 1.0]),
    ),
    st.sampled_from([{"segment": "gold"}, {"segment": "gold_email"}]),
)
DEFINITIONS = st.recursive(
    LEAVES,
    lambda children: st.one_of(
        st.builds(lambda items: {"all": items}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda items: {"any": items}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda item: {"not": item}, children),
    ),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(definition=DEFINITIONS)
def test_compiled_query_equals_the_reference_evaluator(loaded_dataset, definition):
    assert validate_definition(definition, event_types=None, identifier_types=None, segments=SEGMENTS) == []
    compiled = set(segment_queryset(definition, now=NOW, resolve_segment=resolve).values_list("id", flat=True))
    expected = {
        data.id for data in loaded_dataset if reference_matches(data, definition, now=NOW, resolve_segment=resolve)
    }
    assert compiled == expected


@pytest.fixture
def loaded_dataset(dataset):
    return [load_profile_data(profile) for profile in Profile.objects.filter(pk__in=dataset.values())]

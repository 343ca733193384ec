"""Validation messages with paths, cycles, hash, dependencies and diff: pure functions."""

from segments.domain import (
    DefinitionError,
    definition_dependencies,
    definition_diff,
    definition_hash,
    validate_definition,
)

EVENT_TYPES = {"order.completed", "product.viewed", "page.viewed"}
IDENTIFIER_TYPES = {"email", "phone"}


def errors(definition, segments=None, slug=None):
    return validate_definition(
        definition, event_types=EVENT_TYPES, identifier_types=IDENTIFIER_TYPES, segments=segments or {}, slug=slug
    )


def test_a_valid_definition_has_no_errors():
    definition = {
        "all": [
            {"trait": "plan", "op": "in", "value": ["gold", "silver"]},
            {"not": {"event": "order.completed", "within_last_days": 30}},
            {
                "sequence": [{"event": "product.viewed"}, {"event": "order.completed"}],
                "within_hours": 2,
                "then": "absent",
            },
            {"consent": "email_marketing"},
            {"identifier": "email"},
            {"merge_confidence": {"op": "gte", "value": 0.8}},
            {"any": [{"segment": "vip"}, {"trait": "signup", "op": "before", "value": "2026-01-01"}]},
        ]
    }
    assert errors(definition, segments={"vip": {"trait": "vip", "op": "exists"}}) == []


def test_unknown_operator_points_at_the_condition():
    definition = {
        "all": [
            {"trait": "age", "op": "gte", "value": 3},
            {"event": "order.completed", "where": [{"property": "total", "op": "greater", "value": 1}]},
        ]
    }
    assert errors(definition) == [
        DefinitionError(
            "all[1].where[0].op",
            "Unknown operator 'greater'. Use one of: eq, neq, in, contains, exists, gt, gte, lt, lte. "
            "Did you mean 'gte'?",
        )
    ]


def test_wrong_value_types_and_days():
    assert errors({"trait": "age", "op": "gt", "value": "30"}) == [
        DefinitionError("value", "'gt' compares numbers; the value must be a number, not \"30\".")
    ]
    assert errors({"event": "order.completed", "within_last_days": 0}) == [
        DefinitionError("within_last_days", "'within_last_days' must be a whole number of days above 0.")
    ]
    assert errors({"trait": "seen", "op": "within_last_days", "value": 1.5}) == [
        DefinitionError("value", "'within_last_days' must be a whole number of days above 0.")
    ]
    assert [e.path for e in errors({"trait": "seen", "op": "before", "value": "yesterday"})] == ["value"]
    assert [e.path for e in errors({"trait": "seen", "op": "before", "value": "2026-02-30"})] == ["value"]
    assert [e.path for e in errors({"trait": "plan", "op": "in", "value": []})] == ["value"]
    assert [e.path for e in errors({"trait": "plan", "op": "eq", "value": {"a": 1}})] == ["value"]


def test_unknown_event_type_suggests_the_close_one():
    assert errors({"not": {"event": "order.complete"}}) == [
        DefinitionError("not.event", "Unknown event type 'order.complete'. Did you mean 'order.completed'?")
    ]


def test_unknown_fields_are_errors():
    assert errors({"trait": "plan", "op": "eq", "value": "gold", "colour": "red"}) == [
        DefinitionError("colour", "Unknown field 'colour' in a trait condition. Allowed: op, trait, value.")
    ]
    assert [e.path for e in errors({"any": [{"evnt": "order.completed"}]})] == ["any[0]"]
    assert "Did you mean 'event'?" in errors({"any": [{"evnt": "order.completed"}]})[0].message
    assert [e.path for e in errors({"event": "order.completed", "count": {"op": "gte", "value": 1, "x": 1}})] == [
        "count.x"
    ]


def test_structural_errors():
    assert [e.path for e in errors({"all": []})] == ["all"]
    assert [
        e.path
        for e in errors(
            {
                "event": "order.completed",
                "count": {"op": "gte", "value": 1},
                "sum": {"property": "total", "op": "gte", "value": 1},
            }
        )
    ] == [""]
    assert [e.path for e in errors({"sequence": [{"event": "product.viewed"}], "within_hours": 2})] == ["sequence"]
    assert [
        e.path
        for e in errors(
            {
                "sequence": [{"event": "product.viewed"}, {"event": "order.completed"}],
                "within_hours": 0,
                "then": "maybe",
            }
        )
    ] == ["within_hours", "then"]
    assert [e.path for e in errors({"consent": "emails"})] == ["consent"]
    assert [e.path for e in errors({"identifier": "fax"})] == ["identifier"]
    assert [e.path for e in errors({"merge_confidence": {"op": "gte", "value": 2}})] == ["merge_confidence.value"]
    assert [e.path for e in errors({"trait": "plan", "value": 1})] == ["op"]
    assert [e.path for e in errors([1])] == [""]


def test_cycles_and_unknown_segments_are_rejected():
    segments = {"loyal": {"any": [{"segment": "vip"}]}, "vip": {"trait": "vip", "op": "exists"}}
    assert errors({"segment": "loyal"}, segments=segments, slug="vip") == [
        DefinitionError("segment", "Segment 'vip' refers back to itself through 'loyal' → 'vip'.")
    ]
    assert errors({"not": {"segment": "vip"}}, segments=segments, slug="vip") == [
        DefinitionError("not.segment", "Segment 'vip' cannot refer to itself.")
    ]
    assert errors({"segment": "loyall"}, segments=segments) == [
        DefinitionError("segment", "Unknown segment 'loyall'. Did you mean 'loyal'?")
    ]
    assert errors({"segment": "loyal"}, segments=segments, slug="new") == []


def test_hash_is_canonical():
    assert definition_hash({"trait": "a", "op": "eq", "value": 1}) == definition_hash(
        {"value": 1, "op": "eq", "trait": "a"}
    )
    assert definition_hash({"trait": "a", "op": "eq", "value": 1}) != definition_hash(
        {"trait": "a", "op": "eq", "value": 2}
    )


def test_dependencies_follow_segment_references():
    segments = {"buyers": {"event": "order.completed", "within_last_days": 30}}
    definition = {
        "all": [
            {"segment": "buyers"},
            {"trait": "plan", "op": "eq", "value": "gold"},
            {"consent": "email_marketing"},
            {"identifier": "email"},
            {"sequence": [{"event": "product.viewed"}, {"event": "page.viewed"}], "within_hours": 1},
        ]
    }
    dependencies = definition_dependencies(definition, segments)
    assert dependencies.event_types == {"order.completed", "product.viewed", "page.viewed"}
    assert dependencies.trait_keys == {"plan"}
    assert dependencies.purposes == {"email_marketing"}
    assert dependencies.identifier_types == {"email"}
    assert dependencies.segments == {"buyers"}
    assert dependencies.uses_now is True
    assert definition_dependencies({"trait": "plan", "op": "eq", "value": "gold"}, {}).uses_now is False


def test_diff_shows_changed_lines():
    diff = definition_diff(
        {"trait": "plan", "op": "eq", "value": "gold"}, {"trait": "plan", "op": "eq", "value": "silver"}
    )
    assert '-  "value": "gold"\n' in diff
    assert '+  "value": "silver"\n' in diff
    assert definition_diff({"a": 1}, {"a": 1}) == ""

"""The segment builder: its pure tree operations and coercions, and the htmx page."""

import json

import pytest
from django.urls import reverse

from profiles.processing import raw_events_process
from segments import builder
from segments.builder import BuilderError, Hints
from segments.domain import DefinitionError
from segments.models import Segment, SegmentVersion
from segments.services import segment_create
from tests.profiles.processing.conftest import event

HINTS = Hints(
    trait_keys=("age", "city"),
    event_types=("order.completed", "page.viewed"),
    purposes=("analytics",),
    identifier_types=("phone",),
    segments=("vip",),
    trait_kinds={"age": ("number",), "city": ("string",), "mixed": ("number", "string"), "vip": ("boolean",)},
    property_kinds={("order.completed", "total"): "number", ("order.completed", "coupon"): "string"},
    today="2026-03-31",
)
CITY = {"trait": "city", "op": "eq", "value": "Paris"}
ORDER = {"event": "order.completed"}


# -- paths -------------------------------------------------------------------------------------


def test_paths_parse_join_and_come_from_validation_errors():
    assert builder.parse_path("") == []
    assert builder.parse_path("all.1.where.0.op") == ["all", 1, "where", 0, "op"]
    assert builder.join_path("all", 1, "where") == "all.1.where"
    assert builder.join_path("", "all", 0) == "all.0"
    assert builder.path_from_error("all[1].where[0].op") == "all.1.where.0.op"
    assert builder.path_from_error("sequence[1].event") == "sequence.1.event"
    assert builder.path_from_error("") == ""
    definition = {"all": [CITY, {"event": "x", "where": [{"property": "p", "op": "exists"}]}]}
    assert builder.get(definition, "all.1.where.0.property") == "p"
    with pytest.raises(BuilderError, match="Nothing at 'all.5'"):
        builder.get(definition, "all.5")


# -- defaults and add --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("trait", {"trait": "age", "op": "exists"}),
        ("event", {"event": "order.completed"}),
        (
            "sequence",
            {
                "sequence": [{"event": "order.completed"}, {"event": "page.viewed"}],
                "within_hours": 24,
                "then": "present",
            },
        ),
        ("consent", {"consent": "analytics"}),
        ("identifier", {"identifier": "phone"}),
        ("merge_confidence", {"merge_confidence": {"op": "gte", "value": 0.9}}),
        ("segment", {"segment": "vip"}),
        ("all", {"all": []}),
        ("any", {"any": []}),
        ("not", {"not": {"trait": "age", "op": "exists"}}),
    ],
)
def test_add_every_kind_with_defaults_from_the_data(kind, expected):
    start = {"all": [CITY]}
    assert builder.apply(start, {"op": "add", "path": "", "kind": kind}, HINTS) == {"all": [CITY, expected]}
    assert start == {"all": [CITY]}  # the input is never changed


def test_defaults_without_data():
    assert builder.default_condition("trait") == {"trait": "", "op": "exists"}
    assert builder.default_condition("consent") == {"consent": "email_marketing"}
    assert builder.default_condition("identifier") == {"identifier": "email"}
    with pytest.raises(BuilderError, match="Unknown kind"):
        builder.default_condition("weather")


def test_add_to_a_nested_group_next_to_a_condition_and_filters():
    nested = {"all": [{"any": [CITY]}]}
    assert builder.add(nested, "all.0", "event", HINTS) == {"all": [{"any": [CITY, ORDER]}]}
    # Adding next to a single condition makes an `all` of both.
    assert builder.add(CITY, "", "event", HINTS) == {"all": [CITY, ORDER]}
    # A property filter starts on the event's first known property.
    with_filter = builder.add({"all": [ORDER]}, "all.0", "where", HINTS)
    assert with_filter == {"all": [{"event": "order.completed", "where": [{"property": "coupon", "op": "exists"}]}]}
    again = builder.add(with_filter, "all.0", "where", HINTS)
    assert len(again["all"][0]["where"]) == 2
    step = builder.add({"sequence": [{"event": "page.viewed"}, ORDER], "within_hours": 1}, "sequence.0", "where", HINTS)
    assert step["sequence"][0] == {"event": "page.viewed", "where": [{"property": "", "op": "exists"}]}
    with pytest.raises(BuilderError, match="Property filters belong"):
        builder.add({"all": [CITY]}, "all.0", "where", HINTS)


# -- remove ------------------------------------------------------------------------------------


def test_remove_conditions_filters_optional_fields_and_negations():
    definition = {
        "all": [
            CITY,
            {
                "event": "order.completed",
                "where": [{"property": "total", "op": "exists"}],
                "within_last_days": 7,
                "count": {"op": "gte", "value": 2},
            },
        ]
    }
    assert builder.remove(definition, "all.0") == {"all": [definition["all"][1]]}
    assert builder.remove(definition, "all.1.where.0") == {
        "all": [CITY, {"event": "order.completed", "within_last_days": 7, "count": {"op": "gte", "value": 2}}]
    }
    assert "within_last_days" not in builder.remove(definition, "all.1.within_last_days")["all"][1]
    assert "count" not in builder.remove(definition, "all.1.count")["all"][1]
    assert builder.remove(definition, "") == {"all": []}
    negated = {"any": [{"not": CITY}, ORDER]}
    assert builder.remove(negated, "any.0.not") == {"any": [ORDER]}
    assert builder.remove({"not": CITY}, "not") == {"all": []}
    with pytest.raises(BuilderError, match="exactly two steps"):
        builder.remove({"sequence": [ORDER, ORDER], "within_hours": 1}, "sequence.0")
    with pytest.raises(BuilderError, match="required"):
        builder.remove(CITY, "op")
    with pytest.raises(BuilderError, match="Nothing at"):
        builder.remove(definition, "all.9")


# -- wrap, group, negate, kind, measure --------------------------------------------------------


def test_wrap_switch_and_negate():
    definition = {"all": [CITY, ORDER]}
    assert builder.wrap(definition, "all.1", "any") == {"all": [CITY, {"any": [ORDER]}]}
    assert builder.wrap(definition, "", "all") == {"all": [definition]}
    with pytest.raises(BuilderError):
        builder.wrap(definition, "all.0", "none")
    assert builder.set_group(definition, "") == {"any": [CITY, ORDER]}
    assert builder.set_group({"any": [CITY]}, "") == {"all": [CITY]}
    assert builder.apply(definition, {"op": "group", "path": "", "group": "all"}) == definition
    with pytest.raises(BuilderError, match="Only an 'all' or 'any'"):
        builder.set_group(definition, "all.0")
    negated = builder.negate(definition, "all.0")
    assert negated == {"all": [{"not": CITY}, ORDER]}
    assert builder.negate(negated, "all.0") == definition  # negating a `not` removes it


def test_change_kind():
    definition = {"all": [CITY]}
    assert builder.change_kind(definition, "", "any") == {"any": [CITY]}
    assert builder.change_kind(definition, "all.0", "any") == {"all": [{"any": [CITY]}]}
    assert builder.change_kind(definition, "all.0", "not") == {"all": [{"not": CITY}]}
    assert builder.change_kind(definition, "all.0", "event", HINTS) == {"all": [ORDER]}
    assert builder.change_kind(definition, "all.0", "trait", HINTS) is definition
    with pytest.raises(BuilderError, match="inside this group"):
        builder.change_kind(definition, "", "event", HINTS)
    with pytest.raises(BuilderError, match="inside this group"):
        builder.change_kind({"not": CITY}, "", "trait", HINTS)


def test_measure_count_sum_and_none():
    definition = {"all": [ORDER]}
    counted = builder.set_measure(definition, "all.0", "count", HINTS)
    assert counted == {"all": [{"event": "order.completed", "count": {"op": "gte", "value": 1}}]}
    summed = builder.set_measure(counted, "all.0", "sum", HINTS)
    assert summed == {"all": [{"event": "order.completed", "sum": {"property": "total", "op": "gte", "value": 0}}]}
    assert builder.set_measure(summed, "all.0", "none", HINTS) == definition
    with pytest.raises(BuilderError, match="Only an event"):
        builder.set_measure({"all": [CITY]}, "all.0", "count")
    with pytest.raises(BuilderError):
        builder.set_measure(definition, "all.0", "average")


# -- set with coercion -------------------------------------------------------------------------


def _set(definition, path, text, hints=HINTS):
    return builder.apply(definition, {"op": "set", "path": path, "value": text}, hints)


def test_set_trait_values_coerced_by_operator_and_kind():
    base = {"all": [{"trait": "city", "op": "eq", "value": ""}]}
    assert _set(base, "all.0.value", " Paris ")["all"][0]["value"] == "Paris"
    assert _set(base, "all.0.value", "42")["all"][0]["value"] == "42"  # city holds text
    age = {"trait": "age", "op": "eq", "value": 0}
    assert _set(age, "value", "42")["value"] == 42
    with pytest.raises(BuilderError, match="must be a number"):
        _set(age, "value", "forty")
    vip = {"trait": "vip", "op": "eq", "value": True}
    assert _set(vip, "value", "no")["value"] is False
    mixed = {"trait": "mixed", "op": "eq", "value": ""}  # kinds disagree: guessed from the text
    assert _set(mixed, "value", "3.5")["value"] == 3.5
    assert _set(mixed, "value", "true")["value"] is True
    assert _set(mixed, "value", '"007"')["value"] == "007"
    assert _set(mixed, "value", "007")["value"] == "007"
    one_of = {"trait": "mixed", "op": "in", "value": []}
    assert _set(one_of, "value", "Paris, 3, , true")["value"] == ["Paris", 3, True]
    with pytest.raises(BuilderError, match="at least one value"):
        _set(one_of, "value", " , ")
    assert _set({"trait": "city", "op": "in", "value": []}, "value", "1, 2")["value"] == ["1", "2"]
    numeric = {"trait": "score", "op": "gt", "value": 0}
    assert _set(numeric, "value", "1e3")["value"] == 1000.0
    assert _set(numeric, "value", "-2")["value"] == -2
    dated = {"trait": "signup", "op": "before", "value": "2026-01-01"}
    assert _set(dated, "value", "2026-03-31T09:30:00+00:00")["value"] == "2026-03-31T09:30:00+00:00"
    with pytest.raises(BuilderError, match="date like 2026-03-31"):
        _set(dated, "value", "31/03/2026")
    recent = {"trait": "signup", "op": "within_last_days", "value": 30}
    assert _set(recent, "value", "7")["value"] == 7
    with pytest.raises(BuilderError, match="whole number"):
        _set(recent, "value", "1.5")
    with pytest.raises(BuilderError, match="above 0"):
        _set(recent, "value", "0")
    present = {"trait": "city", "op": "exists"}
    assert _set(present, "value", "false") == {"trait": "city", "op": "exists", "value": False}
    assert _set({**present, "value": False}, "value", "true") == present


def test_changing_the_operator_reshapes_the_value():
    city = {"trait": "city", "op": "eq", "value": "Paris"}
    assert _set(city, "op", "in") == {"trait": "city", "op": "in", "value": ["Paris"]}
    assert _set(city, "op", "exists") == {"trait": "city", "op": "exists"}
    assert _set(city, "op", "gt") == {"trait": "city", "op": "gt", "value": 0}
    assert _set({"trait": "n", "op": "eq", "value": "12"}, "op", "gte")["value"] == 12
    assert _set(city, "op", "before")["value"] == "2026-03-31"
    assert _set(city, "op", "within_last_days")["value"] == 30
    assert _set({"trait": "t", "op": "in", "value": ["a", "b"]}, "op", "neq")["value"] == "a"
    assert _set({"trait": "t", "op": "exists"}, "op", "contains")["value"] == ""
    assert _set({"trait": "t", "op": "gt", "value": 5}, "op", "lte")["value"] == 5


def test_set_event_fields():
    event = {"event": "order.completed", "where": [{"property": "total", "op": "gt", "value": 1}]}
    assert _set(event, "where.0.value", "10")["where"][0]["value"] == 10
    coupon = {"event": "order.completed", "where": [{"property": "coupon", "op": "eq", "value": ""}]}
    assert _set(coupon, "where.0.value", "123")["where"][0]["value"] == "123"  # declared as text
    assert _set(event, "where.0.property", "coupon")["where"][0]["property"] == "coupon"
    assert _set(event, "event", "page.viewed")["event"] == "page.viewed"
    assert _set(event, "within_last_days", "30")["within_last_days"] == 30
    assert "within_last_days" not in _set({**event, "within_last_days": 3}, "within_last_days", " ")
    counted = {"event": "order.completed", "count": {"op": "gte", "value": 1}}
    assert _set(counted, "count.value", "3")["count"] == {"op": "gte", "value": 3}
    assert _set(counted, "count.op", "lt")["count"] == {"op": "lt", "value": 1}
    with pytest.raises(BuilderError, match="whole number"):
        _set(counted, "count.value", "2.5")
    summed = {"event": "order.completed", "sum": {"property": "", "op": "gte", "value": 0}}
    assert _set(summed, "sum.value", "99.90")["sum"]["value"] == 99.9
    assert _set(summed, "sum.property", "total")["sum"]["property"] == "total"


def test_set_sequence_consent_identifier_confidence_and_segment():
    sequence = {"sequence": [{"event": "page.viewed"}, ORDER], "within_hours": 24}
    assert _set(sequence, "within_hours", "1.5")["within_hours"] == 1.5
    with pytest.raises(BuilderError, match="above 0"):
        _set(sequence, "within_hours", "0")
    assert _set(sequence, "then", "absent")["then"] == "absent"
    with pytest.raises(BuilderError):
        _set(sequence, "then", "maybe")
    assert _set(sequence, "sequence.1.event", "page.viewed")["sequence"][1] == {"event": "page.viewed"}
    assert _set({"consent": "analytics"}, "granted", "false") == {"consent": "analytics", "granted": False}
    assert _set({"consent": "analytics", "granted": False}, "granted", "true") == {"consent": "analytics"}
    assert _set({"consent": "analytics"}, "consent", "advertising") == {"consent": "advertising"}
    assert _set({"identifier": "email"}, "identifier", "phone") == {"identifier": "phone"}
    confidence = {"merge_confidence": {"op": "gte", "value": 0.9}}
    assert _set(confidence, "merge_confidence.value", "0.75")["merge_confidence"]["value"] == 0.75
    assert _set(confidence, "merge_confidence.op", "lt")["merge_confidence"] == {"op": "lt", "value": 0.9}
    with pytest.raises(BuilderError, match="between 0 and 1"):
        _set(confidence, "merge_confidence.value", "2")
    assert _set({"segment": "a"}, "segment", "vip") == {"segment": "vip"}
    with pytest.raises(BuilderError, match="Choose a trait"):
        _set(CITY, "trait", " ")
    with pytest.raises(BuilderError, match="not a field"):
        _set(CITY, "colour", "red")


def test_coercions():
    assert builder.coerce_number("3") == 3 and builder.coerce_number("3.0") == 3.0
    assert builder.coerce_number("1 000") == 1000
    assert builder.coerce_number("4.0", whole=True) == 4
    with pytest.raises(BuilderError):
        builder.coerce_number("0x10")
    with pytest.raises(BuilderError):
        builder.coerce_number(True)
    assert builder.coerce_boolean("Yes") is True and builder.coerce_boolean("0") is False
    with pytest.raises(BuilderError):
        builder.coerce_boolean("maybe")
    assert builder.coerce_date(" 2026-03-31 ") == "2026-03-31"
    with pytest.raises(BuilderError):
        builder.coerce_date("2026-02-30")
    assert builder.coerce_scalar("12345678901234567890") == "12345678901234567890"  # too long for a number
    assert builder.coerce_scalar("12", "integer") == 12
    assert builder.coerce_list("a,b") == ["a", "b"] and builder.coerce_list(["x"]) == ["x"]


def test_unknown_operation():
    with pytest.raises(BuilderError, match="Unknown builder operation"):
        builder.apply(CITY, {"op": "explode"})


# -- outline and errors ------------------------------------------------------------------------


def test_outline_and_errors_on_the_conditions_they_name():
    definition = {
        "all": [
            CITY,
            {"not": {"event": "order.completed", "where": [{"property": "total", "op": "gt", "value": "x"}]}},
            {"sequence": [{"event": "a"}, {"event": "b"}], "within_hours": 1},
            "junk",
        ]
    }
    root = builder.outline(definition)
    assert [node.path for node in builder.nodes(root)] == [
        "",
        "all.0",
        "all.1",
        "all.1.not",
        "all.1.not.where.0",
        "all.2",
        "all.2.sequence.0",
        "all.2.sequence.1",
        "all.3",
    ]
    assert [node.kind for node in builder.nodes(root)] == [
        "all",
        "trait",
        "not",
        "event",
        "where",
        "sequence",
        "step",
        "step",
        "invalid",
    ]
    assert (
        root.children[0].id == "b-all-0"
        and root.id == "b-root"
        and root.prefix == ""
        and root.children[0].prefix == "all.0."
    )
    assert root.children[1].children[0].filters[0].value_text == "x"
    unplaced = builder.attach_errors(
        root,
        [
            DefinitionError("all[1].not.where[0].value", "must be a number"),
            DefinitionError("all[2].sequence[1].event", "Unknown event type 'b'."),
            DefinitionError("all[3]", "Expected a condition"),
            DefinitionError("", "whole"),
        ],
    )
    nodes = {node.path: node for node in builder.nodes(root)}
    assert nodes["all.1.not.where.0"].errors == ["value: must be a number"]
    assert nodes["all.2.sequence.1"].errors == ["event: Unknown event type 'b'."]
    assert nodes["all.3"].errors == ["Expected a condition"]
    assert nodes[""].errors == ["whole"] and unplaced == []
    node = builder.Node("x", "trait", {"trait": "t", "op": "in", "value": [1, True, "a"]})
    assert node.value_text == "1, true, a"
    assert builder.Node("e", "event", {"event": "e", "count": {}}).measure == "count"


# -- the page ----------------------------------------------------------------------------------

ROLES = ["marketer", "guest_services", "privacy_officer", "integration_engineer"]
HTMX = {"HTTP_HX_REQUEST": "true"}
page_test = pytest.mark.django_db  # the builder routes are part of segments.urls


@pytest.fixture
def people(send):
    for n, (city, age) in enumerate([("Paris", 41), ("Paris", 29), ("London", 35)]):
        send(event("page.viewed", ids=[("email", f"p{n}@example.com")], traits={"city": city, "age": age}))
    send(
        event(
            "order.completed",
            ids=[("email", "p0@example.com")],
            properties={
                "order_id": "o1",
                "total": 120,
                "currency": "EUR",
                "gift_wrap": True,
            },
        )
    )
    raw_events_process()


@pytest.fixture
def marketer(client, make_user):
    client.force_login(make_user("marketer"))
    return client


def update(client, definition, **operation):
    text = definition if isinstance(definition, str) else json.dumps(definition)
    return client.post(reverse("segments:builder_update"), {"definition": text, **operation}, **HTMX)


def posted_json(response) -> dict:
    """The definition in the out-of-band textarea of an htmx answer."""
    html = response.content.decode()
    start = html.index(">", html.index('<textarea id="builder-definition"')) + 1
    from html import unescape

    return json.loads(unescape(html[start : html.index("</textarea>", start)]))


@page_test
@pytest.mark.django_db
def test_the_page_offers_seen_traits_event_types_and_their_properties(marketer, people):
    response = marketer.get(reverse("segments:builder_new"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="builder-definition"' in html and "{\n  &quot;all&quot;: []\n}" in html
    assert "Add a condition to see the audience." in html
    assert "problem" not in html and "Valid definition" not in html  # an empty start is not an error
    assert 'value="trait">Trait</option>' in html and 'value="sequence"' in html
    # The JSON editor and every control carry labels.
    assert '<label for="builder-definition">' in html and '<label for="b-root-add-kind">' in html
    definition = {
        "all": [
            {"trait": "city", "op": "eq", "value": "Paris"},
            {"event": "order.completed", "where": [{"property": "total", "op": "gt", "value": 100}]},
        ]
    }
    segment_create(slug="buyers", name="Buyers", definition=definition, note="n", author="u")
    html = marketer.get(reverse("segments:builder_edit", args=["buyers"])).content.decode()
    assert '<option value="city" selected>city (string)</option>' in html
    assert '<option value="age">age (number)</option>' in html
    assert '<option value="order.completed" selected>order.completed</option>' in html
    assert '<option value="total" selected>total (number)</option>' in html
    assert '<option value="gift_wrap">gift_wrap (undeclared)</option>' in html
    assert 'data-count="1"' in html
    assert reverse("profiles:profile_detail", args=[_only_member(definition)]) in html
    assert 'name="segment" value="buyers"' in html


def _only_member(definition):
    from segments.selectors import segment_audience

    return segment_audience(definition=definition).get().pk


@page_test
@pytest.mark.django_db
def test_an_update_adds_a_condition_and_answers_with_json_count_and_sample(marketer, people):
    response = update(marketer, {"all": []}, op="add", path="", kind="trait")
    assert response.status_code == 200
    # A trait seen in the data is the default; the answer carries the JSON, errors and preview out of band.
    assert posted_json(response) == {"all": [{"trait": "age", "op": "exists"}]}
    html = response.content.decode()
    assert 'id="builder-json" hx-swap-oob="true"' in html and 'id="builder-preview"' in html
    assert 'data-count="3"' in html and "of 3 active profiles match" in html
    assert html.count('<a href="/profiles/') == 3
    response = update(marketer, posted_json(response), op="set", path="all.0.trait", value="city")
    response = update(marketer, posted_json(response), op="set", path="all.0.op", value="eq")
    response = update(marketer, posted_json(response), op="set", path="all.0.value", value="Paris")
    assert posted_json(response) == {"all": [{"trait": "city", "op": "eq", "value": "Paris"}]}
    assert 'data-count="2"' in response.content.decode()
    response = update(marketer, posted_json(response), op="add", path="", kind="event")
    response = update(marketer, posted_json(response), op="measure", path="all.1", value="count")
    assert posted_json(response)["all"][1] == {"event": _first_event(), "count": {"op": "gte", "value": 1}}


def _first_event():
    from segments.catalog import event_catalog

    return event_catalog()[0].type


@page_test
@pytest.mark.django_db
def test_an_invalid_operation_or_definition_returns_a_message(marketer, people):
    definition = {"all": [{"trait": "age", "op": "gt", "value": 30}]}
    response = update(marketer, definition, op="set", path="all.0.value", value="thirty")
    assert response.status_code == 200
    html = response.content.decode()
    assert "The value must be a number" in html
    assert posted_json(response) == definition  # unchanged
    response = update(marketer, definition, op="remove", path="all.4")
    assert "Nothing at" in response.content.decode()
    # A definition the validator refuses: the message sits next to the condition it names.
    bad = {"all": [{"event": "order.complete"}]}
    html = update(marketer, bad, op="json").content.decode()
    assert "Unknown event type" in html and "order.completed" in html
    assert 'id="b-all-0-errors"' in html and "Fix the problems shown to see the audience." in html


@page_test
@pytest.mark.django_db
def test_editing_the_json_re_renders_the_form_and_bad_json_leaves_it(marketer, people):
    response = update(marketer, '{"any": [{"trait": "city", "op": "eq", "value": "London"}]}', op="json")
    html = response.content.decode()
    assert 'id="b-any-0"' in html and 'value="London"' in html and 'data-count="1"' in html
    assert 'id="builder-json"' not in html  # the textarea being typed in is left alone
    response = update(marketer, '{"any": [', op="json")
    assert response.status_code == 200 and response["HX-Reswap"] == "none"
    html = response.content.decode()
    assert "The JSON is not valid (line 1, column 10" in html and 'id="builder-errors" role="status"' in html
    assert 'id="b-' not in html
    assert "A definition is one JSON object" in update(marketer, "[1]", op="json").content.decode()


@page_test
@pytest.mark.django_db
def test_without_htmx_an_update_renders_the_whole_page(marketer, people):
    response = marketer.post(
        reverse("segments:builder_update"), {"definition": '{"all": []}', "op": "add", "kind": "identifier", "path": ""}
    )
    assert response.status_code == 200 and "<html" in response.content.decode()
    from identity.models import IdentifierType

    first = IdentifierType.objects.order_by("slug").values_list("slug", flat=True)[0]
    assert f"&quot;identifier&quot;: &quot;{first}&quot;" in response.content.decode()


@page_test
@pytest.mark.django_db
def test_save_creates_a_segment_then_a_version_with_the_note(marketer, people):
    paris = {"trait": "city", "op": "eq", "value": "Paris"}
    response = marketer.post(
        reverse("segments:builder_save"),
        {"definition": json.dumps(paris), "slug": "paris", "name": "Paris", "note": "from the builder"},
    )
    assert response.status_code == 302 and response["Location"] == reverse("segments:segment_detail", args=["paris"])
    segment = Segment.objects.get(slug="paris")
    assert (segment.published_version.note, segment.published_version.definition) == ("from the builder", paris)
    assert segment.owner.username.startswith("marketer")
    london = {"trait": "city", "op": "eq", "value": "London"}
    response = marketer.post(
        reverse("segments:builder_save"), {"definition": json.dumps(london), "segment": "paris", "note": "moved"}
    )
    assert response.status_code == 302
    segment.refresh_from_db()
    assert (segment.published_version.number, segment.published_version.note) == (2, "moved")


@page_test
@pytest.mark.django_db
def test_save_errors_re_render_with_messages_and_write_nothing(marketer, people):
    url = reverse("segments:builder_save")
    response = marketer.post(
        url, {"definition": '{"trait": "city", "op": "greater", "value": 1}', "slug": "bad", "name": "Bad", "note": "x"}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "Unknown operator" in html and 'id="b-root-errors"' in html
    response = marketer.post(url, {"definition": '{"trait": "city", "op": "exists"}', "note": ""})
    assert response.status_code == 400
    assert "Required for a new segment." in response.content.decode()
    assert "This field is required." in response.content.decode()
    response = marketer.post(url, {"definition": "{oops", "slug": "x", "name": "X", "note": "n"})
    assert response.status_code == 400 and "Not valid JSON" in response.content.decode()
    segment_create(slug="paris", name="Paris", definition={"trait": "city", "op": "exists"}, note="n", author="u")
    response = marketer.post(
        url, {"definition": '{"trait": "city", "op": "exists"}', "slug": "paris", "name": "P", "note": "n"}
    )
    assert response.status_code == 400 and "A segment with this slug exists" in response.content.decode()
    assert Segment.objects.count() == 1 and SegmentVersion.objects.count() == 1


@page_test
@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_permission_matrix_and_denied_saves_write_nothing(client, make_user, role, people):
    segment_create(slug="paris", name="Paris", definition={"trait": "city", "op": "exists"}, note="n", author="u")
    client.force_login(make_user(role))
    allowed = role == "marketer"
    ok = 200 if allowed else 403
    assert client.get(reverse("segments:builder_new")).status_code == ok
    assert client.get(reverse("segments:builder_edit", args=["paris"])).status_code == ok
    assert update(client, {"all": []}, op="add", path="", kind="trait").status_code == ok
    new = client.post(
        reverse("segments:builder_save"),
        {"definition": '{"trait": "city", "op": "exists"}', "slug": "fresh", "name": "Fresh", "note": "n"},
    )
    version = client.post(
        reverse("segments:builder_save"),
        {"definition": '{"trait": "age", "op": "exists"}', "segment": "paris", "note": "n"},
    )
    assert (new.status_code, version.status_code) == ((302, 302) if allowed else (403, 403))
    if not allowed:
        assert Segment.objects.count() == 1 and SegmentVersion.objects.count() == 1


@page_test
@pytest.mark.django_db
def test_save_needs_the_right_permission_for_new_and_existing(client, make_user, people):
    from django.contrib.auth.models import Permission

    segment_create(slug="paris", name="Paris", definition={"trait": "city", "op": "exists"}, note="n", author="u")
    user = make_user()
    user.user_permissions.add(
        Permission.objects.get(codename="view_segment"), Permission.objects.get(codename="add_segmentversion")
    )
    client.force_login(user)
    assert (
        client.post(
            reverse("segments:builder_save"),
            {"definition": '{"trait": "city", "op": "exists"}', "slug": "new", "name": "New", "note": "n"},
        ).status_code
        == 403
    )
    assert (
        client.post(
            reverse("segments:builder_save"),
            {"definition": '{"trait": "age", "op": "exists"}', "segment": "paris", "note": "n"},
        ).status_code
        == 302
    )
    assert Segment.objects.count() == 1 and SegmentVersion.objects.count() == 2


@page_test
@pytest.mark.django_db
def test_anonymous_users_are_sent_to_log_in_and_writes_need_post(client, marketer):
    for url in (reverse("segments:builder_new"), reverse("segments:builder_edit", args=["x"])):
        response = client.__class__().get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    for url in (reverse("segments:builder_update"), reverse("segments:builder_save")):
        response = client.__class__().post(url, {})
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
        assert marketer.get(url).status_code == 405
    assert Segment.objects.count() == 0


@page_test
@pytest.mark.django_db
def test_every_kind_of_condition_renders_with_its_controls(marketer, people):
    segment_create(
        slug="paris", name="Paris", definition={"trait": "city", "op": "eq", "value": "Paris"}, note="n", author="u"
    )
    definition = {
        "any": [
            {"not": {"trait": "city", "op": "in", "value": ["Paris", "Lyon"]}},
            {
                "event": "order.completed",
                "where": [{"property": "total", "op": "gte", "value": 100}],
                "within_last_days": 30,
                "count": {"op": "gte", "value": 2},
            },
            {"event": "order.completed", "sum": {"property": "total", "op": "gt", "value": 50}},
            {
                "sequence": [
                    {"event": "page.viewed", "where": [{"property": "url", "op": "contains", "value": "/p"}]},
                    {"event": "order.completed"},
                ],
                "within_hours": 24,
                "then": "absent",
                "within_last_days": 7,
            },
            {"consent": "email_marketing", "granted": False},
            {"identifier": "email"},
            {"merge_confidence": {"op": "lt", "value": 0.8}},
            {"segment": "paris"},
            {"all": [{"trait": "age", "op": "within_last_days", "value": 3}]},
        ]
    }
    response = update(marketer, definition, op="json")
    html = response.content.decode()
    assert response.status_code == 200
    for control in [
        'id="b-any-0-not-value" name="value" value="Paris, Lyon"',
        'id="b-any-1-count-value"',
        'id="b-any-2-sum-property"',
        'id="b-any-3-sequence-0-where-0-property"',
        'id="b-any-3-then"',
        'id="b-any-4-granted"',
        'id="b-any-5-identifier"',
        'id="b-any-6-mc-value"',
        'id="b-any-7-segment"',
        'id="b-any-8-group"',
    ]:
        assert control in html, control
    assert '<option value="absent" selected>absent</option>' in html
    assert '<option value="false" selected>not granted</option>' in html
    assert '<option value="paris" selected>Paris (paris)</option>' in html
    # Every control has a label.
    import re

    ids = set(re.findall(r'<(?:select|input|textarea) id="([^"]+)"', html))
    labelled = set(re.findall(r'<label for="([^"]+)"', html))
    assert ids and ids <= labelled, ids - labelled


@pytest.mark.django_db
def test_page_names_cannot_be_segment_slugs(client, make_user):
    client.force_login(make_user("marketer"))
    response = client.post(
        reverse("segments:builder_save"),
        {"definition": '{"trait": "city", "op": "exists"}', "slug": "builder", "name": "B", "note": "n"},
    )
    assert response.status_code == 400 and "is the name of a page" in response.content.decode()
    assert not Segment.objects.exists()

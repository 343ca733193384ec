"""The simulation's resolution and report, as pure functions over two small exports."""

import io
from dataclasses import replace

import pytest

from identity.simulation import (
    Conflict,
    MergeSample,
    PairReport,
    RowRef,
    SimulationInvalid,
    SourceInput,
    SourceReport,
    column_mapping,
    csv_rows,
    parse_mapping_text,
    simulate,
)
from tests.identity.metrics.samples import (
    BLOCKED,
    BOOKINGS,
    BOOKINGS_ROWS,
    RULES,
    SHOP,
    SHOP_MAPPING,
    SHOP_ROWS,
)


def sources(shop=SHOP, bookings=BOOKINGS, shop_mapping=SHOP_MAPPING):
    return [
        SourceInput("shop", csv_rows(io.StringIO(shop)), shop_mapping),
        SourceInput("bookings", csv_rows(io.StringIO(bookings))),
    ]


def test_report_of_two_exports():
    report = simulate(sources(), rules=RULES, blocked=BLOCKED)

    assert report.sources == [
        SourceReport(
            name="shop",
            mapping={"Customer Email": "email", "Phone": "phone", "user_id": "user_id"},
            rows=6,
            rows_resolved=5,
            invalid_values=1,
            blocked_values=1,
            truncated=False,
            profiles=4,
            matched_profiles=2,
            match_rate=0.5,
        ),
        SourceReport(
            name="bookings",
            mapping={
                "email": "email",
                "phone": "phone",
                "anonymous_id": "anonymous_id",
                "stripe_customer_id": "stripe_customer_id",
            },
            rows=9,
            rows_resolved=8,
            invalid_values=1,
            blocked_values=0,
            truncated=False,
            profiles=3,
            matched_profiles=2,
            match_rate=0.6667,
        ),
    ]
    assert report.pairs == [
        PairReport(source="shop", other="bookings", profiles=4, matched_profiles=2, match_rate=0.5),
        PairReport(source="bookings", other="shop", profiles=3, matched_profiles=2, match_rate=0.6667),
    ]
    assert report.profiles == 5
    assert report.merges == 2
    assert report.merges_by_rule == {"anonymous_into_known": 1, "co_observed": 1}
    assert report.merges_by_identifier_type == {"anonymous_id": 1, "phone": 1}
    assert report.conflicts == 2
    assert report.conflicts_by_kind == {"handle_join:stripe_customer_id": 1, "merge_limit:email": 1}
    assert report.warnings == []


def test_sample_merges_show_the_rows_that_joined():
    report = simulate(sources(), rules=RULES, blocked=BLOCKED)

    assert report.merge_samples == [
        MergeSample(
            rule="anonymous_into_known",
            identifier_type="anonymous_id",
            value="dev-3",
            row=RowRef("bookings", 8, BOOKINGS_ROWS[8]),
            other_row=RowRef("bookings", 7, BOOKINGS_ROWS[7]),
        ),
        MergeSample(
            rule="co_observed",
            identifier_type="phone",
            value="+12125550199",
            row=RowRef("bookings", 9, BOOKINGS_ROWS[9]),
            other_row=RowRef("bookings", 5, BOOKINGS_ROWS[5]),
        ),
    ]


def test_conflicts_name_the_limit_and_both_rows():
    report = simulate(sources(), rules=RULES, blocked=BLOCKED)

    assert report.conflict_samples == [
        Conflict(
            kind="merge_limit",
            identifier_type="email",
            value="bob@example.com",
            reason="merge would give the profile 2 user_id identifiers (limit 1)",
            row=RowRef("shop", 7, SHOP_ROWS[7]),
            other_row=RowRef("shop", 3, SHOP_ROWS[3]),
        ),
        Conflict(
            kind="handle_join",
            identifier_type="stripe_customer_id",
            value="cus_9",
            reason="handle identifiers never join two profiles",
            row=RowRef("bookings", 6, BOOKINGS_ROWS[6]),
            other_row=RowRef("shop", 2, SHOP_ROWS[2]),
        ),
    ]


def test_a_draft_role_changes_the_outcome():
    # A Stripe customer id as canonical would try to join Carol and Ada: the user_id limit stops it.
    rules = [replace(rule, role="canonical") if rule.slug == "stripe_customer_id" else rule for rule in RULES]
    report = simulate(sources(), rules=rules, blocked=BLOCKED)

    assert report.conflicts_by_kind == {"merge_limit:email": 1, "merge_limit:stripe_customer_id": 1}
    assert report.merges_by_rule == {"anonymous_into_known": 1, "co_observed": 1}


def test_a_draft_limit_blocks_an_attach():
    one = "user_id,email\nu1,a@example.com\nu1,b@example.com\n"
    two = "user_id\nu1\n"
    files = lambda: [  # noqa: E731
        SourceInput("one", csv_rows(io.StringIO(one))),
        SourceInput("two", csv_rows(io.StringIO(two))),
    ]

    live = simulate(files(), rules=RULES)
    assert (live.profiles, live.conflicts) == (1, 0)

    draft = [replace(rule, limit_per_profile=1) if rule.slug == "email" else rule for rule in RULES]
    report = simulate(files(), rules=draft)
    assert report.profiles == 2
    assert report.conflicts_by_kind == {"attach_limit:email": 1}
    assert report.conflict_samples[0].reason == "attaching would give the profile 2 email identifiers (limit 1)"
    assert [(s.name, s.profiles, s.matched_profiles) for s in report.sources] == [("one", 2, 1), ("two", 1, 1)]


def test_rows_are_capped_per_file_with_a_warning():
    report = simulate(sources(), rules=RULES, blocked=BLOCKED, max_rows=3)

    assert [(s.name, s.rows, s.truncated) for s in report.sources] == [("shop", 3, True), ("bookings", 3, True)]
    assert report.warnings == [
        "shop: only the first 3 rows were simulated; the rest of the file was not read. "
        "Use the identity_simulate command with --max-rows for larger files.",
        "bookings: only the first 3 rows were simulated; the rest of the file was not read. "
        "Use the identity_simulate command with --max-rows for larger files.",
    ]


def test_rows_are_read_lazily():
    consumed = []

    def rows():
        for row in csv_rows(io.StringIO(SHOP)):
            consumed.append(row)
            yield row

    simulate([SourceInput("shop", rows(), SHOP_MAPPING), *sources()[1:]], rules=RULES, max_rows=2)
    assert len(consumed) == 4  # header, two rows, and the one that showed the file goes on


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (lambda: sources()[:1], "a simulation needs exports from two or more sources"),
        (
            lambda: [SourceInput("a", csv_rows(io.StringIO(SHOP))), SourceInput("a", csv_rows(io.StringIO(SHOP)))],
            "each source needs its own name",
        ),
        (lambda: sources(shop=""), "shop: the file is empty"),
        (lambda: sources(shop="name,city\nAda,Paris\n", shop_mapping={}), "shop: no column maps to an identifier type"),
        (
            lambda: sources(shop_mapping={"Customer Email": "mail"}),
            "shop: unknown identifier types in the mapping: Customer Email -> mail",
        ),
        (lambda: sources(shop_mapping={"E-mail": "email"}), "shop: mapped columns not in the file: E-mail"),
    ],
)
def test_input_it_cannot_simulate(files, message):
    with pytest.raises(SimulationInvalid) as error:
        simulate(files(), rules=RULES)
    assert str(error.value) == message


def test_undecodable_file_is_reported():
    text = io.TextIOWrapper(io.BytesIO(b"email\n\xff\xfe\n"), encoding="utf-8", newline="")
    with pytest.raises(SimulationInvalid, match="not a readable UTF-8 CSV"):
        simulate([SourceInput("bad", csv_rows(text)), *sources()[1:]], rules=RULES)


def test_mapping_text_and_default_columns():
    assert parse_mapping_text("Email Address = email\n# note\n\nCRM id: ignore\n") == {
        "Email Address": "email",
        "CRM id": "ignore",
    }
    with pytest.raises(SimulationInvalid, match="line 1"):
        parse_mapping_text("just a column")
    header = ["E-Mail", "User ID", "Phone", "notes"]
    assert column_mapping(header, {"E-Mail": "email", "Phone": "ignore"}, ["email", "phone", "user_id"]) == {
        "E-Mail": "email",
        "User ID": "user_id",
    }

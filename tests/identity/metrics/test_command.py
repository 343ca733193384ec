"""identity_simulate: the simulation report as JSON, from files on disk; nothing written."""

import json

import pytest
from django.core.management import CommandError, call_command

from identity.models import Identifier, IdentityLink, Merge
from profiles.models import Profile
from tests.identity.metrics.samples import BOOKINGS, SHOP, SHOP_MAPPING

pytestmark = pytest.mark.django_db


@pytest.fixture
def files(tmp_path):
    (tmp_path / "shop.csv").write_text(SHOP, encoding="utf-8")
    (tmp_path / "bookings-2026.csv").write_text(BOOKINGS, encoding="utf-8")
    (tmp_path / "mapping.json").write_text(json.dumps({"shop": SHOP_MAPPING}), encoding="utf-8")
    return tmp_path


def run(*args):
    from io import StringIO

    out, err = StringIO(), StringIO()
    call_command("identity_simulate", *args, stdout=out, stderr=err)
    return json.loads(out.getvalue()), err.getvalue()


def live_counts():
    return [model.objects.count() for model in (Profile, Identifier, IdentityLink, Merge)]


def test_prints_the_report_and_writes_nothing(files):
    before = live_counts()
    report, err = run(
        f"{files}/shop.csv:shop", f"{files}/bookings-2026.csv:bookings", "--mapping", f"{files}/mapping.json"
    )

    assert live_counts() == before and err == ""
    assert [(s["name"], s["rows"], s["profiles"], s["matched_profiles"]) for s in report["sources"]] == [
        ("shop", 6, 4, 2),
        ("bookings", 9, 3, 2),
    ]
    assert report["merges_by_rule"] == {"anonymous_into_known": 1, "co_observed": 1}
    assert report["conflicts_by_kind"] == {"handle_join:stripe_customer_id": 1, "merge_limit:email": 1}
    assert report["merge_samples"][1]["row"] == {
        "source": "bookings",
        "line": 9,
        "identifiers": {"email": "carol@example.com", "phone": "+12125550199"},
    }


def test_draft_rules_names_from_files_and_the_row_cap(files):
    (files / "rules.json").write_text(json.dumps({"stripe_customer_id": {"role": "canonical"}}), encoding="utf-8")
    report, err = run(
        f"{files}/shop.csv",
        f"{files}/bookings-2026.csv",
        "--mapping",
        f"{files}/mapping.json",
        "--rules",
        f"{files}/rules.json",
        "--max-rows",
        "5",
    )
    assert [s["name"] for s in report["sources"]] == ["shop", "bookings-2026"]
    assert [s["truncated"] for s in report["sources"]] == [True, True]
    assert err.count("only the first 5 rows were simulated") == 2
    # Shop's line 7 (its 6th row, the user_id conflict) is past the cap; the draft handle-as-canonical is not.
    assert report["conflicts_by_kind"] == {"merge_limit:stripe_customer_id": 1}


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"email": {"role": "boss"}}, "rules: email: role is one of"),
        ({"email": {"limit_per_profile": 0}}, "rules: email: limit_per_profile is a whole number from 1, or null"),
        ({"email": {"colour": "red"}}, "rules: email: use role, normaliser, limit_per_profile and priority"),
        ({"loyalty_id": {"priority": "high"}}, "rules: loyalty_id: priority is a whole number"),
    ],
)
def test_bad_rules(files, rules, message):
    (files / "rules.json").write_text(json.dumps(rules), encoding="utf-8")
    with pytest.raises(CommandError, match=message):
        run(f"{files}/shop.csv", f"{files}/bookings-2026.csv", "--rules", f"{files}/rules.json")


def test_bad_input(files):
    with pytest.raises(CommandError, match="No such file"):
        run(f"{files}/shop.csv", f"{files}/missing.csv")
    with pytest.raises(CommandError, match="a simulation needs exports from two or more sources"):
        run(f"{files}/shop.csv")
    with pytest.raises(CommandError, match="shop: unknown identifier types in the mapping: Customer Email -> mail"):
        (files / "bad.json").write_text(json.dumps({"shop": {"Customer Email": "mail"}}), encoding="utf-8")
        run(f"{files}/shop.csv", f"{files}/bookings-2026.csv", "--mapping", f"{files}/bad.json")


def test_a_new_draft_type_joins_on_its_column(files):
    # Shop's customer_ref as a canonical draft type: r1..r6 are all different, so it joins nobody,
    # but its values now count (the blocked email's row is resolved by its ref too).
    (files / "rules.json").write_text(json.dumps({"customer_ref": {"priority": 75}}), encoding="utf-8")
    (files / "mapping.json").write_text(json.dumps({"shop": {"Customer Email": "email"}}), encoding="utf-8")
    report, _ = run(
        f"{files}/shop.csv:shop",
        f"{files}/bookings-2026.csv:bookings",
        "--mapping",
        f"{files}/mapping.json",
        "--rules",
        f"{files}/rules.json",
    )
    shop = report["sources"][0]
    assert shop["mapping"] == {
        "Customer Email": "email",
        "Phone": "phone",
        "customer_ref": "customer_ref",
        "user_id": "user_id",
    }
    assert (shop["rows"], shop["rows_resolved"], shop["profiles"]) == (6, 6, 5)

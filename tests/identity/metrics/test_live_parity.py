"""The simulation resolves as the live resolver does: the same rows through the real pipeline give
the same profiles (as sets of identifiers), merges and blocked links."""

import csv
import io

import pytest

from identity.metrics import simulation_blocked_values, simulation_live_rules
from identity.models import Identifier, IdentityLink, Merge
from identity.simulation import Simulator, SourceInput, column_mapping, csv_rows
from profiles.processing import raw_events_process
from tests.identity.metrics.samples import BOOKINGS, SHOP, SHOP_MAPPING
from tests.profiles.processing.conftest import event

pytestmark = pytest.mark.django_db


def test_simulation_matches_the_live_resolver(send):
    rules = simulation_live_rules()
    slugs = [rule.slug for rule in rules]
    for text, explicit in ((SHOP, SHOP_MAPPING), (BOOKINGS, {})):
        rows = list(csv.reader(io.StringIO(text)))
        mapping = column_mapping(rows[0], explicit, slugs)
        for row in rows[1:]:
            ids = [(mapping[column], value) for column, value in zip(rows[0], row, strict=True) if column in mapping]
            ids = [(slug, value) for slug, value in ids if value.strip()]
            if ids:
                send(event("page.viewed", ids=ids))
    raw_events_process()

    simulator = Simulator(rules, blocked=simulation_blocked_values())
    report = simulator.run(
        [
            SourceInput("shop", csv_rows(io.StringIO(SHOP)), SHOP_MAPPING),
            SourceInput("bookings", csv_rows(io.StringIO(BOOKINGS))),
        ]
    )

    live_profiles = {}
    for identifier in Identifier.objects.select_related("identifier_type"):
        live_profiles.setdefault(identifier.profile_id, set()).add(
            (identifier.identifier_type.slug, identifier.display_value)
        )
    assert sorted(map(sorted, live_profiles.values())) == sorted(map(sorted, simulator.components()))
    live_merges = {}
    for rule in Merge.objects.values_list("rule", flat=True):
        live_merges[rule] = live_merges.get(rule, 0) + 1
    assert live_merges == report.merges_by_rule
    assert IdentityLink.objects.filter(status=IdentityLink.BLOCKED).count() == report.conflicts

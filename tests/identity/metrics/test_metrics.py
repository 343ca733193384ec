"""Live figures on the known graph of conftest.py, snapshots and trends."""

from datetime import timedelta

import pytest
from django.utils import timezone

from identity.metrics import (
    Trend,
    identity_metric_history,
    identity_metrics,
    identity_metrics_snapshot,
    metric_trends,
    pair_matrix,
)
from identity.models import IdentityMetricSnapshot
from identity.tasks_metrics import identity_metrics_snapshot_task
from tests.identity.metrics.conftest import BLOCKED_HANDLE, BLOCKED_USER_ID, NOW

EXPECTED = {
    "profiles": 5,
    "coverage": {"covered": 2, "rate": 0.4},
    "sources": [
        {"slug": "booking", "name": "Booking", "profiles": 3, "matched_profiles": 3, "match_rate": 1.0},
        {"slug": "shop", "name": "Shop", "profiles": 3, "matched_profiles": 2, "match_rate": 0.6667},
        {"slug": "web", "name": "Web", "profiles": 3, "matched_profiles": 1, "match_rate": 0.3333},
    ],
    "pairs": [
        {"source": "booking", "other": "shop", "profiles": 3, "matched_profiles": 3, "match_rate": 1.0},
        {"source": "booking", "other": "web", "profiles": 3, "matched_profiles": 1, "match_rate": 0.3333},
        {"source": "shop", "other": "booking", "profiles": 3, "matched_profiles": 2, "match_rate": 0.6667},
        {"source": "shop", "other": "web", "profiles": 3, "matched_profiles": 1, "match_rate": 0.3333},
        {"source": "web", "other": "booking", "profiles": 3, "matched_profiles": 1, "match_rate": 0.3333},
        {"source": "web", "other": "shop", "profiles": 3, "matched_profiles": 1, "match_rate": 0.3333},
    ],
    "merges": {
        "total": 4,
        "in_effect": 3,
        "unmerged": 1,
        "by_rule": {
            "anonymous_into_known": {"total": 1, "in_effect": 1},
            "co_observed": {"total": 2, "in_effect": 1},
            "manual": {"total": 1, "in_effect": 1},
        },
    },
    "unmerges": 1,
    "blocked": {
        "total": 3,
        "by_reason": [{"reason": BLOCKED_USER_ID, "links": 2}, {"reason": BLOCKED_HANDLE, "links": 1}],
    },
    "review_backlog": {
        "pending_review": 1,
        "blocked": 2,
        "total": 3,
        "oldest_created_at": "2026-03-01T07:00:00+00:00",
        "oldest_age_seconds": 5 * 3600,
    },
}


def test_figures_of_a_known_graph(graph, django_assert_num_queries):
    # Seven aggregate queries whatever the size of the graph: no loop over profiles or events.
    with django_assert_num_queries(7):
        figures = identity_metrics(now=NOW)
    assert figures == EXPECTED


@pytest.mark.django_db
def test_figures_of_an_empty_graph():
    figures = identity_metrics(now=NOW)
    assert figures == {
        "profiles": 0,
        "coverage": {"covered": 0, "rate": None},
        "sources": [],
        "pairs": [],
        "merges": {"total": 0, "in_effect": 0, "unmerged": 0, "by_rule": {}},
        "unmerges": 0,
        "blocked": {"total": 0, "by_reason": []},
        "review_backlog": {
            "pending_review": 0,
            "blocked": 0,
            "total": 0,
            "oldest_created_at": None,
            "oldest_age_seconds": None,
        },
    }


def test_a_source_without_profiles_is_listed_but_has_no_pairs(graph):
    from profiles.models import Source

    Source.objects.create(name="Ads", slug="ads", kind=Source.CSV)
    figures = identity_metrics(now=NOW)
    assert figures["sources"][0] == {
        "slug": "ads",
        "name": "Ads",
        "profiles": 0,
        "matched_profiles": 0,
        "match_rate": None,
    }
    assert "ads" not in {pair["source"] for pair in figures["pairs"]} | {pair["other"] for pair in figures["pairs"]}


def test_snapshot_stores_the_figures_and_history_is_oldest_first(graph, monkeypatch):
    first = identity_metrics_snapshot()
    result = identity_metrics_snapshot_task()
    second = IdentityMetricSnapshot.objects.get(pk=result["snapshot_id"])
    assert result == {"snapshot_id": second.pk, "captured_at": second.captured_at.isoformat()}

    stored = IdentityMetricSnapshot.objects.get(pk=first.pk).figures
    expected = {**EXPECTED, "review_backlog": dict(EXPECTED["review_backlog"])}
    assert stored["review_backlog"].pop("oldest_age_seconds") > 0
    expected["review_backlog"].pop("oldest_age_seconds")
    assert stored == expected

    IdentityMetricSnapshot.objects.filter(pk=first.pk).update(captured_at=timezone.now() - timedelta(hours=1))
    assert [s.pk for s in identity_metric_history()] == [first.pk, second.pk]
    assert [s.pk for s in identity_metric_history(limit=1)] == [second.pk]
    assert identity_metric_history(limit=0) == []


def _snapshot(hours_ago, **figures):
    return IdentityMetricSnapshot(captured_at=NOW - timedelta(hours=hours_ago), figures=figures)


def test_trends_follow_each_figure_across_snapshots():
    snapshots = [
        _snapshot(2, profiles=10, coverage={"rate": 0.5}, sources=[{"slug": "shop", "match_rate": 0.2}]),
        _snapshot(1, profiles=12, coverage={"rate": 0.25}, sources=[]),
        _snapshot(0, profiles=11, coverage={"rate": 0.75}, sources=[{"slug": "shop", "match_rate": 0.4}]),
    ]
    trends = {trend.label: trend for trend in metric_trends(snapshots)}

    assert list(trends) == [
        "Identity coverage",
        "Active profiles",
        "Merges in effect",
        "Unmerges",
        "Blocked links",
        "Review backlog",
        "Match rate: shop",
    ]
    assert trends["Active profiles"].values == [10, 12, 11]
    assert trends["Active profiles"].summary == (10, 11, 10, 12)
    assert trends["Match rate: shop"].values == [0.2, None, 0.4]
    assert trends["Match rate: shop"].summary == (0.2, 0.4, 0.2, 0.4)
    assert trends["Merges in effect"].summary == (None, None, None, None)
    assert trends["Merges in effect"].sparkline_points() == ""
    # x spreads the snapshots over the width; y maps the series' range onto the height (top is high).
    assert trends["Identity coverage"].sparkline_points() == "0.0,16.0 80.0,30.0 160.0,2.0"
    assert trends["Match rate: shop"].sparkline_points() == "0.0,30.0 160.0,2.0"


def test_a_flat_or_single_point_series_draws_at_the_bottom():
    assert Trend("x", [3], is_rate=False).sparkline_points() == "0.0,30.0"
    assert Trend("x", [3, 3], is_rate=False).sparkline_points() == "0.0,30.0 160.0,30.0"


def test_pair_matrix_is_square_over_sources_with_profiles():
    matrix = pair_matrix(EXPECTED["sources"] + [{"slug": "ads", "profiles": 0}], EXPECTED["pairs"])
    assert [row["source"] for row in matrix] == ["booking", "shop", "web"]
    assert [cell and cell["matched_profiles"] for cell in matrix[1]["cells"]] == [2, None, 1]

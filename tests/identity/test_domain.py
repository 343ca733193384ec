"""Pure graph functions behind unmerge and merge confidence."""

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from identity.domain import bottleneck_confidence, components, minimum_cut


def connected(nodes, edges, a, b) -> bool:
    return any(a in group and b in group for group in components(nodes, edges))


def test_the_merge_link_alone_is_cut_when_it_is_the_only_bridge():
    # Ada's email + device (1, 2), Bob's phone + user id (3, 4), the wrong link 2-3.
    # The sides are every identifier each profile held, so the cut falls between them.
    edges = [(1, 2), (3, 4), (2, 3)]
    assert minimum_cut(edges, {1, 2}, {3, 4}) == {2}


def test_a_later_link_that_also_bridges_the_sides_is_cut_too():
    edges = [(1, 2), (3, 4), (2, 3), (1, 4)]
    cut = minimum_cut(edges, {1, 2}, {3, 4})
    assert cut == {2, 3}
    assert not connected([1, 2, 3, 4], [e for i, e in enumerate(edges) if i not in cut], 1, 4)


def test_links_inside_one_side_are_kept():
    # A new identifier 5 joined Ada's side through two links after the merge: never cut.
    edges = [(1, 2), (2, 5), (1, 5), (2, 3), (3, 4)]
    assert minimum_cut(edges, {1, 2}, {3, 4}) == {3}


def test_already_apart_needs_no_cut_and_overlapping_sides_are_refused():
    assert minimum_cut([(1, 2), (3, 4)], {1}, {4}) == set()
    with pytest.raises(ValueError):
        minimum_cut([(1, 2)], {1, 2}, {2})


edges_strategy = st.lists(
    st.tuples(st.integers(0, 6), st.integers(0, 6)).filter(lambda e: e[0] != e[1]), min_size=1, max_size=10
)


@given(edges=edges_strategy)
def test_minimum_cut_separates_with_the_fewest_edges(edges):
    nodes = list(range(7))
    sources, sinks = {0}, {6}
    cut = minimum_cut(edges, sources, sinks)
    remaining = [edge for i, edge in enumerate(edges) if i not in cut]
    assert not connected(nodes, remaining, 0, 6)
    # No smaller set of edges separates them (brute force over the small graph).
    for size in range(len(cut)):
        for removed in itertools.combinations(range(len(edges)), size):
            kept = [edge for i, edge in enumerate(edges) if i not in removed]
            assert connected(nodes, kept, 0, 6)


def test_merge_confidence_is_the_weakest_link_that_holds_the_profile_together():
    # 1-2 strong, 2-3 weak (0.6) but 1-3 strong (0.95) makes it redundant.
    assert bottleneck_confidence([1, 2, 3], [(1, 2, 1.0), (2, 3, 0.6), (1, 3, 0.95)]) == 0.95
    assert bottleneck_confidence([1, 2, 3], [(1, 2, 1.0), (2, 3, 0.6)]) == 0.6
    assert bottleneck_confidence([1], []) == 1.0


def test_components_are_sorted_by_their_lowest_member():
    assert components([5, 1, 2, 9], [(9, 5)]) == [{1}, {2}, {5, 9}]

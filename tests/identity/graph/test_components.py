from array import array

import pytest
from django.db import connection

from identity.graph import connected_components, find_root, stream_columns, union_edges


def test_components_are_labelled_by_their_smallest_node():
    assert connected_components([1, 2, 3, 4, 5, 6], [(2, 5), (5, 6), (1, 3)]) == {1: 1, 2: 2, 3: 1, 4: 4, 5: 2, 6: 2}


def test_cycles_and_repeated_edges_join_nothing_twice():
    parent = array("q", range(5))
    assert union_edges(parent, [(1, 2), (2, 3), (3, 1), (1, 2), (4, 3)]) == 3
    assert {find_root(parent, n) for n in (1, 2, 3, 4)} == {1}
    assert find_root(parent, 0) == 0


def test_a_long_path_is_one_component_and_halving_flattens_it():
    size = 20_000
    parent = array("q", range(size))
    # Each edge hangs the next node off the chain's end: the worst order for a naive union-find.
    assert union_edges(parent, [(n + 1, n) for n in range(size - 1)]) == size - 1
    assert find_root(parent, size - 1) == 0
    assert max(parent) < size


def test_no_edges_leaves_every_node_alone():
    assert connected_components([3, 1, 2], []) == {1: 1, 2: 2, 3: 3}
    assert connected_components([], []) == {}


@pytest.mark.django_db
def test_stream_columns_decodes_every_row_across_blocks():
    # Over 1 MiB of binary COPY on PostgreSQL: rows straddle the blocks the stream decodes.
    rows = 60_000
    if connection.vendor == "postgresql":
        sql = f"SELECT g::bigint, (g * 3)::bigint, (g / 4.0)::float8 FROM generate_series(1, {rows}) AS g"
    else:
        sql = (
            f"WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {rows}) "
            "SELECT g, g * 3, g / 4.0 FROM s"
        )
    firsts, thirds, quarters = array("q"), array("q"), array("d")
    blocks = 0
    for a, b, c in stream_columns(sql, "qqd"):
        firsts.extend(a)
        thirds.extend(b)
        quarters.extend(c)
        blocks += 1

    assert list(firsts) == list(range(1, rows + 1))
    assert list(thirds) == [3 * n for n in range(1, rows + 1)]
    assert list(quarters) == [n / 4 for n in range(1, rows + 1)]
    assert blocks > 1

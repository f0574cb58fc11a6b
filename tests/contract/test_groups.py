"""group_rows (and group_column, its form for one column): each distinct key with its rows, in first-seen
order, rows in their original order."""

from __future__ import annotations

import random

import numpy as np

from mkt_ray.contract._groups import group_column, group_rows


def test_groups_equal_a_plain_python_grouping() -> None:
    rng = random.Random(3)
    rows = np.array(sorted(rng.sample(range(10_000), 2_000)))
    keys = [(rng.choice("abcde"), rng.randrange(3)) for _ in rows]
    expected: dict[tuple, list[int]] = {}
    for key, row in zip(keys, rows.tolist(), strict=True):
        expected.setdefault(key, []).append(row)
    got = group_rows(iter(keys), rows)
    assert [(key, members.tolist()) for key, members in got] == list(expected.items())


def test_no_rows_and_one_group() -> None:
    assert group_rows([], np.zeros(0, np.int64)) == []
    [(key, members)] = group_rows(["t"] * 3, np.array([4, 7, 9]))
    assert key == "t" and members.tolist() == [4, 7, 9]


def test_group_column_equals_a_plain_python_grouping() -> None:
    rows = np.array([3, 5, 8, 9, 12])
    for values in (["acme"] * 5, ["acme", "globex", "acme", None, "globex"], [None] * 5):
        column = np.array(values, dtype=object)
        expected: dict = {}
        for value, row in zip(values, rows.tolist(), strict=True):
            expected.setdefault(value, []).append(row)
        assert [(key, members.tolist()) for key, members in group_column(column, rows)] == list(expected.items())
    assert group_column(np.array([], dtype=object), np.zeros(0, np.int64)) == []

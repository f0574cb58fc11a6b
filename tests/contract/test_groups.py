"""group_rows: each distinct key with its rows, in first-seen order, rows in their original order."""

from __future__ import annotations

import random

import numpy as np

from mkt_ray.contract._groups import group_rows


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

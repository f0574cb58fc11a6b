"""Rows grouped by key in one C-level pass: what the per-tenant and per-campaign rules iterate over."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from itertools import count

import numpy as np


def factorize_keys(keys: Iterable[Hashable], n: int) -> tuple[np.ndarray, list]:
    """Dense integer codes of `n` keys (0, 1, ... in order of first appearance) and the distinct keys in
    code order.

    One C-level `map` of `dict.setdefault` gives each key the number of its first row; a scatter turns
    those into dense codes. No Python frame per row."""
    ids: dict[Hashable, int] = {}
    first_rows = np.fromiter(map(ids.setdefault, keys, count()), np.int64, n)
    dense = np.empty(n, np.int64)
    dense[np.fromiter(ids.values(), np.int64, len(ids))] = np.arange(len(ids))
    return dense[first_rows], list(ids)


def factorize(*columns: np.ndarray) -> tuple[np.ndarray, list[tuple]]:
    """Integer group codes for the row-wise tuples of these columns, and the distinct tuples in code order."""
    return factorize_keys(zip(*(c.tolist() for c in columns), strict=True), len(columns[0]))


def group_rows(keys: Iterable[Hashable], rows: np.ndarray) -> list[tuple[Hashable, np.ndarray]]:
    """(key, its rows) for each distinct key, in order of first appearance; each group's rows keep their
    order. `keys` holds one key per entry of `rows`.

    One pass for any number of groups (`factorize_keys`, then a stable sort splits the rows), where a mask
    per group (`column == key`) costs a pass over the batch each.
    """
    codes, distinct = factorize_keys(keys, len(rows))
    if len(distinct) <= 1:
        return [(key, rows) for key in distinct]
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    return list(zip(distinct, np.split(rows[order], bounds), strict=True))


def group_column(column: np.ndarray, rows: np.ndarray) -> list[tuple[Hashable, np.ndarray]]:
    """`group_rows` of a column's values (one per entry of `rows`). A column holding one value throughout,
    as a partition slice of one tenant does, is told by one compare instead of a hash a row."""
    if len(column) and not np.count_nonzero(column != column[0]):
        return [(column[0], rows)]
    return group_rows(column.tolist(), rows)

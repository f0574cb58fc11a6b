"""Rows grouped by key in one C-level pass: what the per-tenant and per-campaign rules iterate over."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from itertools import count

import numpy as np


def group_rows(keys: Iterable[Hashable], rows: np.ndarray) -> list[tuple[Hashable, np.ndarray]]:
    """(key, its rows) for each distinct key, in order of first appearance; each group's rows keep their
    order. `keys` holds one key per entry of `rows`.

    Keys are numbered by `dict.setdefault` (C-level map), then one stable sort splits the rows: one pass
    for any number of groups, where a mask per group (`column == key`) costs a pass over the batch each.
    """
    ids: dict[Hashable, int] = {}
    codes = np.fromiter(map(ids.setdefault, keys, count()), np.int64, len(rows))
    if len(ids) <= 1:
        return [(key, rows) for key in ids]
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    return list(zip(ids, np.split(rows[order], bounds), strict=True))

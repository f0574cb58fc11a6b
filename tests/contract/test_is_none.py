"""is_none: `value is None` per value of an object column, read from the column's object pointers."""

from __future__ import annotations

import numpy as np

from mkt_ray.contract import is_none


def test_only_none_is_none() -> None:
    values = [None, "", "None", 0, False, np.nan, [], None, "acme", b""]
    column = np.empty(len(values), object)
    column[:] = values
    assert is_none(column).tolist() == [v is None for v in values]
    assert is_none(column[::3]).tolist() == [v is None for v in values[::3]]  # a strided view
    assert is_none(column[[7, 0, 8]]).tolist() == [True, True, False]
    assert is_none(np.zeros(0, object)).tolist() == []

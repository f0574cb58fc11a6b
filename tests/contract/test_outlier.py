"""The outlier rule decides the same way whatever the batch boundaries (small and large group paths)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mkt_ray.contract import OutlierGuard

KEY = ("acme", "c1", "touchpoint", "cost")


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 400), cuts=st.lists(st.integers(0, 400), max_size=12))
def test_chunked_judging_equals_one_pass(seed: int, n: int, cuts: list[int]) -> None:
    rng = np.random.default_rng(seed)
    values = rng.lognormal(0.0, 0.5, n)
    values[rng.random(n) < 0.03] *= 10_000.0  # spikes
    whole = OutlierGuard(min_samples=20, refresh=16).judge(KEY, values)
    guard, parts = OutlierGuard(min_samples=20, refresh=16), []
    bounds = sorted({0, n, *(c for c in cuts if c <= n)})
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        parts.append(guard.judge(KEY, values[lo:hi]))
    assert np.array_equal(np.concatenate(parts), whole)
    assert not whole[:20].any()  # nothing is judged before min_samples values were accepted

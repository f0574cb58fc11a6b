"""Parity of the window kernels with the plain-Python reference, plus window invariants."""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mkt_ray.kernels import WINDOW_KINDS, closed_before, derived_kpis, merge_window_sums, window_sums
from mkt_ray.kernels import windows as windows_module
from tests.kernels.reference import (
    as_dict,
    closed_before_ref,
    derived_kpis_ref,
    merge_ref,
    window_sums_ref,
)

KINDS = {name: (size, step) for name, size, step in WINDOW_KINDS}
BASE_MS = 1_795_000_000_000  # late 2026, a multiple of neither window step
MINUTE, HOUR = 60_000, 3_600_000


def make_events(seed=0, *, n=2_000, groups=5, spread_ms=2 * HOUR, late_ms=10 * MINUTE, base_ms=BASE_MS,
                k=3, m=2, skip_share=0.1):
    """Seeded events: out-of-order times, some up to `late_ms` late, zero/negative metrics, -1 rows."""
    rng = np.random.default_rng(seed)
    ts = base_ms + np.sort(rng.integers(0, spread_ms + 1, n))
    late = rng.random(n) < 0.2
    ts[late] -= rng.integers(0, late_ms + 1, int(late.sum()))
    group = rng.integers(0, groups, n)
    group[rng.random(n) < skip_share] = -1
    counts = rng.integers(-3, 1_000, (n, k)) * (rng.random((n, k)) < 0.8)
    amounts = rng.normal(0, 100, (n, m)) * (rng.random((n, m)) < 0.8)
    return group, ts, counts, amounts


def assert_exact(result, expected):
    assert as_dict(result) == expected


def assert_close(result, expected, magnitude):
    got = as_dict(result)
    assert got.keys() == expected.keys()
    for key, (ints, floats) in expected.items():
        assert got[key][0] == ints
        for a, b in zip(got[key][1], floats, strict=True):
            assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12 * magnitude)


def chunked(events, cuts, kind):
    bounds = [0, *sorted(cuts), len(events[0])]
    return [window_sums(*(a[lo:hi] for a in events), *KINDS[kind]) for lo, hi in pairwise(bounds)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_seeded_events_match_reference(kind, seed):
    events = make_events(seed)
    assert_exact(window_sums(*events, *KINDS[kind]), window_sums_ref(*events, *KINDS[kind]))


@pytest.mark.parametrize("kind", KINDS)
def test_sparse_path_matches_reference(kind, monkeypatch):
    """Times spread over decades (negative included) take the sort-based path on their own; narrow
    times are forced onto it too, so both numberings are checked against the same reference."""
    wide = make_events(2, n=500, spread_ms=10**12, base_ms=-(10**11), groups=50)
    assert_exact(window_sums(*wide, *KINDS[kind]), window_sums_ref(*wide, *KINDS[kind]))
    monkeypatch.setattr(windows_module, "_DENSE_MIN_KEYS", 0)
    monkeypatch.setattr(windows_module, "_DENSE_KEYS_PER_CONTRIBUTION", 0)
    narrow = make_events(3, n=500)
    assert_exact(window_sums(*narrow, *KINDS[kind]), window_sums_ref(*narrow, *KINDS[kind]))


event_rows = st.lists(
    st.tuples(
        st.integers(-1, 3),
        st.one_of(st.integers(-3 * HOUR, 3 * HOUR), st.integers(-(10**13), 10**13)),
        st.lists(st.integers(-(10**6), 10**6), min_size=2, max_size=2),
        st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False),
    ),
    max_size=40,
)


def as_arrays(rows):
    n = len(rows)
    return (np.array([r[0] for r in rows], np.int64).reshape(n), np.array([r[1] for r in rows], np.int64),
            np.array([r[2] for r in rows], np.int64).reshape(n, 2),
            np.array([r[3] for r in rows], np.float64).reshape(n, 1))


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=60, deadline=None)
@given(rows=event_rows, data=st.data())
def test_random_events_and_chunks_match_reference(kind, rows, data):
    events = as_arrays(rows)
    size, step = KINDS[kind]
    one_shot = window_sums(*events, size, step)
    assert_exact(one_shot, window_sums_ref(*events, size, step))
    cuts = data.draw(st.lists(st.integers(0, len(rows)), max_size=4))
    parts = chunked(events, cuts, kind)
    merged = merge_window_sums(parts)
    assert_exact(merged, merge_ref([as_dict(p) for p in parts]))  # partials added in chunk order
    assert_close(merged, as_dict(one_shot), float(np.abs(events[3]).sum()))


@pytest.mark.parametrize("kind", KINDS)
def test_chunked_streaming_equals_one_shot(kind):
    events = make_events(4, n=3_000)
    cuts = np.random.default_rng(5).integers(0, 3_000, 7).tolist()
    merged = merge_window_sums(chunked(events, cuts, kind))
    assert_close(merged, window_sums_ref(*events, *KINDS[kind]), float(np.abs(events[3]).sum()))
    assert as_dict(merge_window_sums([merged])) == as_dict(merged)  # merging is idempotent on one part


@pytest.mark.parametrize("kind", KINDS)
def test_empty_and_all_skipped_input(kind):
    for n, group in [(0, np.empty(0, np.int64)), (3, np.full(3, -1))]:
        out = window_sums(group, np.arange(n), np.ones((n, 3), np.int64), np.ones((n, 2)), *KINDS[kind])
        assert [a.shape for a in out] == [(0,), (0,), (0, 3), (0, 2)]
        assert [a.dtype for a in out] == [np.int64, np.int64, np.int64, np.float64]


def test_sliding_event_is_in_exactly_five_windows_that_contain_it():
    _, ts, _, _ = make_events(6, n=1_000, spread_ms=HOUR)
    ts[:10] = [-1, 0, 1, 59_999, 60_000, -60_000, -60_001, -300_000, 299_999, 300_000]
    n = ts.shape[0]
    out_group, out_start, out_counts, _ = window_sums(np.arange(n), ts, np.ones((n, 1), np.int64),
                                                      np.zeros((n, 0)), *KINDS["sliding_5m"])
    assert np.array_equal(np.bincount(out_group, minlength=n), np.full(n, 5))
    assert np.all(out_start <= ts[out_group]) and np.all(ts[out_group] < out_start + 300_000)
    assert np.all(out_start % 60_000 == 0) and np.all(out_counts == 1)


def test_negative_times_use_floor_division():
    out = window_sums(np.zeros(3, np.int64), np.array([-1, -60_000, -60_001]), np.ones((3, 1), np.int64),
                      np.ones((3, 1)), *KINDS["tumbling_1m"])
    assert out[1].tolist() == [-120_000, -60_000] and out[2].ravel().tolist() == [1, 2]


def test_hour_totals_equal_their_sixty_minutes():
    group, ts, counts, amounts = make_events(7, n=5_000, spread_ms=5 * HOUR, late_ms=HOUR)
    amounts = np.round(amounts)  # integer-valued floats: sums are exact in any order
    hours = window_sums(group, ts, counts, amounts, *KINDS["tumbling_1h"])
    minutes = window_sums(group, ts, counts, amounts, *KINDS["tumbling_1m"])
    for g, start, c, a in zip(*hours, strict=True):
        inside = (minutes[0] == g) & (minutes[1] >= start) & (minutes[1] < start + HOUR)
        assert inside.sum() <= 60
        assert np.array_equal(minutes[2][inside].sum(axis=0), c)
        assert np.array_equal(minutes[3][inside].sum(axis=0), a)
    sliding = window_sums(group, ts, counts, amounts, *KINDS["sliding_5m"])
    assert np.array_equal(sliding[2].sum(axis=0), 5 * hours[2].sum(axis=0))


def test_window_kinds_table():
    assert len(KINDS) == len(WINDOW_KINDS) == 3
    assert all(size % step == 0 for size, step in KINDS.values())
    with pytest.raises(ValueError):
        window_sums(np.zeros(1), np.zeros(1), np.zeros((1, 1)), np.zeros((1, 1)), 90_000, 60_000)
    with pytest.raises(ValueError):
        window_sums(np.zeros(2), np.zeros(1), np.zeros((1, 1)), np.zeros((1, 1)), 60_000, 60_000)
    with pytest.raises(ValueError):
        merge_window_sums([])


@pytest.mark.parametrize(("watermark", "lateness"), [(0, 0), (59_999, 0), (60_000, 0), (65_000, 5_000),
                                                     (64_999, 5_000), (-1, 0), (10**13, 10**12)])
def test_closed_before_boundaries(watermark, lateness):
    starts = [-120_000, -60_000, 0, 60_000]
    got = closed_before(np.array(starts, np.int64), 60_000, watermark, lateness)
    assert got.dtype == np.bool_
    assert got.tolist() == closed_before_ref(starts, 60_000, watermark, lateness)
    assert closed_before(np.empty(0, np.int64), 60_000, watermark, lateness).shape == (0,)


def test_closed_before_exactly_at_the_boundary():
    assert closed_before(np.array([0]), 60_000, 60_000, 0).tolist() == [True]
    assert closed_before(np.array([0]), 60_000, 59_999, 0).tolist() == [False]
    assert closed_before(np.array([0]), 300_000, 310_000, 10_000).tolist() == [True]
    assert closed_before(np.array([0]), 300_000, 309_999, 10_000).tolist() == [False]


def test_derived_kpis_nan_where_denominator_is_zero():
    impressions = np.array([100, 0, 50, 0, 10], np.int64)
    clicks = np.array([10, 5, 0, 0, 0], np.int64)
    conversions = np.array([2, 1, 0, 0, -1], np.int64)
    cost = np.array([20.0, 0.0, 3.0, 0.0, -0.0])
    revenue = np.array([50.0, 7.0, 0.0, 0.0, 1.0])
    got = derived_kpis(impressions, clicks, conversions, cost, revenue)
    expected = derived_kpis_ref(impressions.tolist(), clicks.tolist(), conversions.tolist(),
                                cost.tolist(), revenue.tolist())
    for g, e in zip(got, expected, strict=True):
        assert g.dtype == np.float64
        assert np.array_equal(g, np.array(e), equal_nan=True)
    ctr, cvr, cpa, roas = got
    assert np.isnan(ctr[[1, 3]]).all() and np.isnan(cvr[[2, 3, 4]]).all()
    assert np.isnan(cpa[[2, 3]]).all() and np.isnan(roas[[1, 3, 4]]).all() and cpa[4] == 0.0

"""KPI window kernels: sums per (group, event-time window), merge of partials, closing, derived KPIs.

Pure functions over arrays; numpy and numba only. Group label codes are int64, negative = skip row.
Windows are by event time: a window [s, s + size) with s a multiple of the step; an event at t belongs
to every window with s <= t < s + size (size / step of them). Float sums add rows in input order within
each output row, so they equal a plain left-to-right Python sum of the same rows bit for bit, and
`merge_window_sums` adds partials in part order (chunked == one shot up to float association).

Measured (one pinned core, numba 0.68 / numpy 2.4, best of 20 warm calls, n = 100k events, 1% skipped,
1000 groups over one hour, 5% up to 10 min late, 3 count + 2 amount columns): tumbling_1m 1.0 ms
(~100M event-window contributions/s), tumbling_1h 0.6 ms (~165M/s), sliding_5m 3.0 ms (~165M/s) on
the dense path. The sort-based path for spread-out keys: 2.9 / 2.2 / 3.9 ms on the same events, and
5.5 / 5.5 / 19.5 ms (~17-25M/s) with times spread over three years, where it is chosen on its own.
"""

from __future__ import annotations

import numpy as np

from mkt_ray.kernels._jit import jit

# (name, size_ms, step_ms); size is a multiple of step. Frozen: a tuple of tuples.
WINDOW_KINDS = (
    ("tumbling_1m", 60_000, 60_000),
    ("tumbling_1h", 3_600_000, 3_600_000),
    ("sliding_5m", 300_000, 60_000),
)

# The dense path scans an int32 table of (groups x window-index span) keys; it is used while the table
# is at most 8 keys per event-window contribution, where it still beat the sort-based sparse path
# (10k groups, 100k events over an hour, tumbling_1m: 2.1 ms dense against 3.0 ms sparse).
_DENSE_MIN_KEYS = 1 << 16
_DENSE_KEYS_PER_CONTRIBUTION = 8


def window_sums(group, ts_ms, counts, amounts, size_ms: int, step_ms: int):
    """Sum `counts` (int64, n x k) and `amounts` (float64, n x m) per (group, window start).

    Returns (out_group, out_start, out_counts, out_amounts), rows sorted by (group, window start),
    one row per window that holds at least one non-skipped event.
    """
    group, ts_ms, counts, amounts = _coerce(group, ts_ms, counts, amounts)
    n_windows = _windows_per_event(size_ms, step_ms)
    step_index = ts_ms // step_ms  # numpy floor division: correct for negative times
    slot, out_group, out_index = _window_slots(group, step_index, n_windows)
    out_counts, out_amounts = _accumulate(slot, n_windows, counts, amounts, out_group.shape[0])
    return out_group, out_index * step_ms, out_counts, out_amounts


def merge_window_sums(parts):
    """Combine partial `window_sums` results (same window kind) into one, adding in part order.

    Integers are exact; floats equal summing the parts' partial sums in the order given.
    """
    parts = list(parts)
    if not parts:
        raise ValueError("merge_window_sums needs at least one part to know the column counts")
    group = np.concatenate([np.asarray(p[0], np.int64) for p in parts])
    start = np.concatenate([np.asarray(p[1], np.int64) for p in parts])
    counts = np.concatenate([np.asarray(p[2], np.int64) for p in parts])
    amounts = np.concatenate([np.asarray(p[3], np.float64) for p in parts])
    # A window of size = step = gcd(starts) maps each partial row onto the window that starts at its
    # start, so equal (group, start) rows add up in part order; the gcd keeps the dense path usable.
    step = max(int(np.gcd.reduce(start)) if start.shape[0] else 1, 1)
    return window_sums(group, start, counts, amounts, step, step)


def closed_before(window_start, size_ms: int, watermark_ms: int, allowed_lateness_ms: int):
    """True where window [s, s + size) is closed: watermark - allowed_lateness >= s + size.

    Closing only gates signals and alerts; late events still update stored windows (event contract).
    """
    end = np.asarray(window_start, dtype=np.int64) + np.int64(size_ms)
    return end <= np.int64(watermark_ms) - np.int64(allowed_lateness_ms)


def derived_kpis(impressions, clicks, conversions, cost, revenue):
    """(ctr, cvr, cpa, roas) as float64: clicks/impressions, conversions/clicks, cost/conversions,
    revenue/cost; NaN (null downstream) where the denominator is 0."""
    return (
        _ratio(clicks, impressions),
        _ratio(conversions, clicks),
        _ratio(cost, conversions),
        _ratio(revenue, cost),
    )


def _ratio(numerator, denominator):
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _coerce(group, ts_ms, counts, amounts):
    """C-contiguous int64/float64 copies-if-needed, so each kernel compiles for one signature."""
    group = np.ascontiguousarray(group, dtype=np.int64).reshape(-1)
    ts_ms = np.ascontiguousarray(ts_ms, dtype=np.int64).reshape(-1)
    counts = np.ascontiguousarray(counts, dtype=np.int64)
    amounts = np.ascontiguousarray(amounts, dtype=np.float64)
    n = group.shape[0]
    if ts_ms.shape[0] != n or counts.ndim != 2 or amounts.ndim != 2:
        raise ValueError("window_sums wants group[n], ts_ms[n], counts[n, k], amounts[n, m]")
    if counts.shape[0] != n or amounts.shape[0] != n:
        raise ValueError(f"window_sums: counts has {counts.shape[0]} rows and amounts "
                         f"{amounts.shape[0]}, group has {n}; pass one row per event")
    return group, ts_ms, counts, amounts


def _windows_per_event(size_ms: int, step_ms: int) -> int:
    if step_ms <= 0 or size_ms <= 0 or size_ms % step_ms:
        raise ValueError(f"window size {size_ms} ms must be a positive multiple of step {step_ms} ms")
    return size_ms // step_ms


def _window_slots(group, step_index, n_windows):
    """Per row the output slot of its newest window (its j-th window is slot - j; -1 = skipped row),
    plus each slot's group and window index (start / step), slots sorted by (group, window)."""
    valid = group >= 0
    if not valid.any():
        empty = np.empty(0, np.int64)
        return np.full(group.shape[0], -1, np.int64), empty, empty
    q = step_index[valid]
    oldest = int(q.min()) - (n_windows - 1)
    span = int(q.max()) - oldest + 1
    n_keys = (int(group.max()) + 1) * span
    n_contrib = int(q.shape[0]) * n_windows
    if n_contrib < 2**31 and n_keys <= max(_DENSE_MIN_KEYS, _DENSE_KEYS_PER_CONTRIBUTION * n_contrib):
        slot, keys = _dense_slots(group, step_index, oldest, span, n_windows, n_keys)
        return slot, keys // span, keys % span + oldest
    return _sparse_slots(group, step_index, valid, oldest, span, n_keys, n_windows)


@jit
def _dense_slots(group, step_index, oldest, span, n_windows, n_keys):
    """Key = group * span + (window index - oldest), marked in a table of all keys, numbered in order."""
    slot_of = np.zeros(n_keys, np.int32)  # slot numbers < contributions < 2**31
    slot = np.full(group.shape[0], -1, np.int64)
    for i in range(group.shape[0]):
        if group[i] >= 0:
            slot[i] = group[i] * span + (step_index[i] - oldest)
            for j in range(n_windows):
                slot_of[slot[i] - j] = 1
    keys = np.empty(np.count_nonzero(slot_of), np.int64)
    n_out = 0
    for key in range(n_keys):
        if slot_of[key]:
            keys[n_out] = key
            slot_of[key] = n_out
            n_out += 1
    for i in range(group.shape[0]):
        if slot[i] >= 0:
            slot[i] = slot_of[slot[i]]
    return slot, keys


def _sparse_slots(group, step_index, valid, oldest, span, n_keys, n_windows):
    """Sort-based numbering for keys too spread out for a table: order rows by (group, window index),
    one int64 argsort where the key fits (1 ms at 100k rows against 11 ms for np.lexsort)."""
    rows = np.flatnonzero(valid)
    if n_keys < 2**62:
        order = rows[np.argsort(group[rows] * span + (step_index[rows] - oldest))]
    else:
        order = rows[np.lexsort((step_index[rows], group[rows]))]
    return _number_sorted_windows(group, step_index, order, n_windows)


@jit
def _number_sorted_windows(group, step_index, order, n_windows):
    """Walk rows in (group, window) order, emitting each row's windows not yet emitted. A group's
    window indices come out strictly increasing with no gaps inside a row's range, so a row's j-th
    window sits at slot - j."""
    out_group = np.empty(order.shape[0] * n_windows, np.int64)
    out_index = np.empty(order.shape[0] * n_windows, np.int64)
    slot = np.full(group.shape[0], -1, np.int64)
    n_out = 0
    for r in order:
        first = step_index[r] - n_windows + 1
        if n_out > 0 and out_group[n_out - 1] == group[r]:
            first = max(first, out_index[n_out - 1] + 1)
        for w in range(first, step_index[r] + 1):
            out_group[n_out] = group[r]
            out_index[n_out] = w
            n_out += 1
        slot[r] = n_out - 1
    return slot, out_group[:n_out].copy(), out_index[:n_out].copy()


@jit
def _accumulate(slot, n_windows, counts, amounts, n_out):
    """Add each row into its n_windows slots, rows in input order (float sums = Python's order)."""
    out_counts = np.zeros((n_out, counts.shape[1]), np.int64)
    out_amounts = np.zeros((n_out, amounts.shape[1]), np.float64)
    for i in range(slot.shape[0]):
        if slot[i] < 0:
            continue
        for w in range(slot[i] - n_windows + 1, slot[i] + 1):
            for j in range(counts.shape[1]):
                out_counts[w, j] += counts[i, j]
            for j in range(amounts.shape[1]):
                out_amounts[w, j] += amounts[i, j]
    return out_counts, out_amounts

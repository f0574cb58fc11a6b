"""Plain-Python references for the kernels, written from the definitions, not from the kernel code.

Dicts keyed by (group, window start); windows found by walking starts down from the newest one while
the event still falls inside, i.e. straight from s <= t < s + size. Floats are added as Python floats
in input order, which is the order the kernels promise.
"""

from __future__ import annotations

import math


def window_sums_ref(group, ts_ms, counts, amounts, size_ms, step_ms):
    """{(group, start): (list of int sums, list of float sums)} for rows with group >= 0."""
    sums = {}
    for i in range(len(group)):
        g = int(group[i])
        if g < 0:
            continue
        t = int(ts_ms[i])
        start = (t // step_ms) * step_ms  # Python's // floors for negative times too
        while start <= t < start + size_ms:
            ints, floats = sums.setdefault((g, start), ([0] * len(counts[i]), [0.0] * len(amounts[i])))
            for j, value in enumerate(counts[i]):
                ints[j] += int(value)
            for j, value in enumerate(amounts[i]):
                floats[j] += float(value)
            start -= step_ms
    return sums


def merge_ref(parts):
    """Add several reference dicts key by key, in the order given."""
    merged = {}
    for part in parts:
        for key, (ints, floats) in part.items():
            if key not in merged:
                merged[key] = ([0] * len(ints), [0.0] * len(floats))
            acc_ints, acc_floats = merged[key]
            for j, value in enumerate(ints):
                acc_ints[j] += value
            for j, value in enumerate(floats):
                acc_floats[j] += value
    return merged


def as_dict(result):
    """The kernel's 4-tuple of arrays as a reference-shaped dict (checks key order on the way)."""
    out_group, out_start, out_counts, out_amounts = result
    keys = list(zip(out_group.tolist(), out_start.tolist(), strict=True))
    assert keys == sorted(keys) and len(set(keys)) == len(keys), "rows not sorted/unique by (group, start)"
    return {key: (out_counts[r].tolist(), out_amounts[r].tolist()) for r, key in enumerate(keys)}


def closed_before_ref(starts, size_ms, watermark_ms, allowed_lateness_ms):
    return [watermark_ms - allowed_lateness_ms >= s + size_ms for s in starts]


def derived_kpis_ref(impressions, clicks, conversions, cost, revenue):
    def ratio(num, den):
        return [float(a) / float(b) if b != 0 else math.nan for a, b in zip(num, den, strict=True)]

    return (ratio(clicks, impressions), ratio(conversions, clicks), ratio(cost, conversions),
            ratio(revenue, cost))

"""DedupIndex against a plain sequential reference of the rule, whatever the batch boundaries."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mkt_ray.contract import DedupIndex

HOUR = 3_600_000


def _reference(events: list[tuple[str, str, int]], window_ms: int) -> list[bool]:
    """One event at a time: a duplicate if its id was accepted for the tenant at a time within the window
    of the tenant's highest event time so far (this event's included)."""
    seen: dict[tuple[str, str], int] = {}
    highest: dict[str, int] = {}
    out = []
    for tenant, event_id, ts in events:
        highest[tenant] = max(highest.get(tenant, ts), ts)
        first = seen.get((tenant, event_id))
        duplicate = first is not None and first >= highest[tenant] - window_ms
        if not duplicate:
            seen[(tenant, event_id)] = ts
        out.append(duplicate)
    return out


@settings(max_examples=200, deadline=None)
@given(
    events=st.lists(
        st.tuples(st.sampled_from(["a", "b"]), st.sampled_from([f"e{i}" for i in range(8)]), st.integers(0, 60) .map(lambda h: h * HOUR)),
        max_size=80,
    ),
    cuts=st.lists(st.integers(0, 80), max_size=4),
    epoch=st.sampled_from([0, 1_795_000_000_000]),  # small times take the row-by-row path, real ones the batch path
)
def test_batches_decide_as_the_sequential_rule(events: list[tuple[str, str, int]], cuts: list[int], epoch: int) -> None:
    events = [(tenant, event_id, epoch + ts) for tenant, event_id, ts in events]
    index, got = DedupIndex(), []
    bounds = sorted({0, len(events), *(c for c in cuts if c <= len(events))})
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        part = events[lo:hi]
        tenants = np.array([t for t, _, _ in part], dtype=object)
        ids = np.array([e for _, e, _ in part], dtype=object)
        ts = np.array([x for _, _, x in part], dtype=np.int64)
        got += index.mark_duplicates(tenants, ids, ts).tolist()
    assert got == _reference(events, index.window_ms)


def test_a_repeat_at_a_small_time_is_a_duplicate_across_batches() -> None:
    """Times CPython shares one int object for (0..256) cannot tell 'inserted now' by identity."""
    index = DedupIndex()
    one = (np.array(["a"], object), np.array(["e1"], object), np.array([0], np.int64))
    assert index.mark_duplicates(*one).tolist() == [False]
    assert index.mark_duplicates(*one).tolist() == [True]


def test_times_given_as_python_objects_decide_the_same() -> None:
    """Two rows sharing one int object for their time still make the second a duplicate."""
    stamp = 1_795_000_000_000
    flags = DedupIndex().mark_duplicates(np.array(["a", "a"], object), np.array(["e", "e"], object),
                                         np.array([stamp, stamp], object))
    assert flags.tolist() == [False, True]

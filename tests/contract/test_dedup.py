"""DedupIndex against a plain sequential reference of the rule, whatever the batch boundaries."""

from __future__ import annotations

import pickle

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
    epoch=st.sampled_from([0, 1_795_000_000_000]),
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


def _stream(n: int, seed: int) -> list[tuple[str, str, int]]:
    """Three tenants, ids from a pool of 4,000, times walking forward 0-3 ms an event with 10% up to 5 s late."""
    rng = np.random.default_rng(seed)
    steps = np.cumsum(rng.integers(0, 4, n)) - np.where(rng.random(n) < 0.1, rng.integers(0, 5_000, n), 0)
    tenants = rng.choice(["a", "b", "c"], n, p=[0.6, 0.3, 0.1])
    ids = rng.integers(0, 4_000, n)
    return [(str(t), f"ev-{i}", 1_795_000_000_000 + int(s)) for t, i, s in zip(tenants, ids, steps, strict=True)]


def test_a_long_stream_through_many_rebuilds_decides_as_the_sequential_rule() -> None:
    """20 tables' worth of ids and a 2 s window: tables grow, drop what left the window and shrink back;
    no decision changes, and the index stays the size of the window, not of the stream."""
    events, window_ms = _stream(60_000, seed=5), 2_000
    index, got = DedupIndex(window_ms=window_ms), []
    for n, lo in enumerate(range(0, len(events), 997)):
        part = events[lo:lo + 997]
        got += index.mark_duplicates(*(np.array(c, dtype=object if i < 2 else np.int64)
                                       for i, c in enumerate(zip(*part, strict=True)))).tolist()
        if n % 3 == 0:  # checkpointed and restored (a table pickles without its empty slots, rebuilt on loading)
            restored = pickle.loads(pickle.dumps(index, protocol=pickle.HIGHEST_PROTOCOL))
            assert restored == index and len(restored) == len(index)
            index = restored
    expected = _reference(events, window_ms)
    assert got == expected and 0 < sum(expected) < len(events)
    assert len(index) < 4_000 and index.nbytes < 200_000  # ~1,300 ids in the window; the stream had 12,000


def test_accepted_at_tells_the_time_an_id_was_recorded() -> None:
    index = DedupIndex()
    index.mark_duplicates(np.array(["a", "a"], object), np.array(["e1", "é2"], object),
                          np.array([1_795_000_000_000, 1_795_000_000_007]))
    assert [index.accepted_at("a", "e1"), index.accepted_at("a", "é2")] == [1_795_000_000_000, 1_795_000_000_007]
    assert [index.accepted_at("a", "e3"), index.accepted_at("b", "e1")] == [None, None]


def test_a_checkpointed_index_of_the_earlier_form_restores_and_decides_on() -> None:
    events, window_ms = _stream(8_000, seed=9), 2_000
    half = len(events) // 2
    seen: dict[str, dict[str, int]] = {}
    highest: dict[str, int] = {}
    for tenant, event_id, ts in events[:half]:  # what the earlier index held after the first half
        highest[tenant] = max(highest.get(tenant, ts), ts)
        first = seen.setdefault(tenant, {}).get(event_id)
        if first is None or first < highest[tenant] - window_ms:
            seen[tenant][event_id] = ts
    # pickled as the earlier versions' DedupIndex was, and checkpoints written by them hold it: a dataclass
    # whose state held the ids in dicts
    earlier = DedupIndex.__new__(DedupIndex)
    earlier.__dict__.update(window_ms=window_ms, seen=seen, watermark=highest, inserted_since_evict=0)
    index = pickle.loads(pickle.dumps(earlier))
    assert isinstance(index, DedupIndex) and len(index) == sum(len(ids) for ids in seen.values())
    rest = events[half:]
    got = index.mark_duplicates(*(np.array(c, dtype=object if i < 2 else np.int64)
                                  for i, c in enumerate(zip(*rest, strict=True)))).tolist()
    assert got == _reference(events, window_ms)[half:]
    again = pickle.loads(pickle.dumps(index))  # and the new form round-trips
    assert again.accepted_at("a", rest[0][1]) == index.accepted_at("a", rest[0][1])

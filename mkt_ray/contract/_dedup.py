"""Duplicate detection: an event_id already accepted for its tenant within 24 h of event time."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count, repeat

import numpy as np

from mkt_ray.contract._groups import group_rows

_NEVER = np.iinfo(np.int64).min  # "not seen": older than any horizon


@dataclass
class DedupIndex:
    """Accepted event ids per tenant, with the event time each was first accepted at.

    A repeat is a duplicate while the original's event time is within `window_ms` of the tenant's
    highest event time seen so far (its watermark). Entries older than that are evicted lazily; the
    answer does not depend on when eviction runs, so a replay of the same stream decides the same way.
    Picklable, so it can be checkpointed with the offsets it covers.
    """

    window_ms: int = 24 * 3_600_000
    seen: dict[str, dict[str, int]] = field(default_factory=dict)
    watermark: dict[str, int] = field(default_factory=dict)
    inserted_since_evict: int = 0

    def mark_duplicates(self, tenants: np.ndarray, event_ids: np.ndarray, ts_ms: np.ndarray, candidates: np.ndarray | None = None) -> np.ndarray:
        """Duplicate flags for the candidate events (all by default), in stream order; the others are recorded."""
        flags = np.zeros(len(tenants), dtype=bool)
        rows = np.arange(len(tenants)) if candidates is None else np.flatnonzero(candidates)
        for tenant, members in group_rows(tenants[rows].tolist(), rows):
            flags[members] = self._mark_tenant(tenant, event_ids[members].tolist(), ts_ms[members])
        if self.inserted_since_evict > 1_000_000:
            self.evict()
        return flags

    def _mark_tenant(self, tenant: str, event_ids: list[str], ts_ms: np.ndarray) -> np.ndarray:
        ids = self.seen.setdefault(tenant, {})
        marks = np.maximum.accumulate(np.maximum(ts_ms, self.watermark.get(tenant, ts_ms[0])))
        self.watermark[tenant] = int(marks[-1])
        horizons = marks - self.window_ms
        self.inserted_since_evict += len(event_ids)
        # rows whose id occurs once in the batch are decided at once against what came before; the few
        # whose id repeats inside the batch are decided in order (the first may make the next a duplicate)
        n = len(event_ids)
        once = len(set(event_ids)) == n or _single(event_ids)
        duplicate = np.zeros(n, bool)
        rows = np.arange(n) if once is True else np.flatnonzero(once)
        single_ids = event_ids if once is True else [event_ids[i] for i in rows.tolist()]
        firsts = np.fromiter(map(ids.get, single_ids, repeat(_NEVER)), np.int64, len(single_ids))
        duplicate[rows] = firsts >= horizons[rows]
        if once is True and not duplicate.any():  # the usual batch: no duplicate, every id recorded in one C pass
            ids.update(zip(event_ids, ts_ms.tolist(), strict=True))
            return duplicate
        fresh = rows[~duplicate[rows]]
        ids.update(zip([event_ids[i] for i in fresh.tolist()], ts_ms[fresh].tolist(), strict=True))
        if once is not True:
            repeated = np.flatnonzero(~once)
            duplicate[repeated] = self._mark_in_order(
                ids, [event_ids[i] for i in repeated.tolist()], ts_ms[repeated].tolist(), horizons[repeated].tolist())
        return duplicate

    @staticmethod
    def _mark_in_order(ids: dict[str, int], event_ids: list[str], ts_ms: list[int], horizons: list[int]) -> np.ndarray:
        flags = []
        for event_id, ts, horizon in zip(event_ids, ts_ms, horizons, strict=True):
            first = ids.get(event_id)
            duplicate = first is not None and first >= horizon
            if not duplicate:
                ids[event_id] = ts
            flags.append(duplicate)
        return np.array(flags, dtype=bool)

    def evict(self) -> int:
        """Forget ids whose event time fell out of the window; returns how many were dropped."""
        dropped = 0
        for tenant, ids in self.seen.items():
            horizon = self.watermark[tenant] - self.window_ms
            stale = [event_id for event_id, ts in ids.items() if ts < horizon]
            for event_id in stale:
                del ids[event_id]
            dropped += len(stale)
        self.inserted_since_evict = 0
        return dropped

    def __len__(self) -> int:
        return sum(len(ids) for ids in self.seen.values())


def _single(event_ids: list[str]) -> np.ndarray:
    """Which ids occur once in the run: each row points at its id's first row (one C-level pass of
    `dict.setdefault`); a first row some later row points at is a repeat too."""
    first_row = np.fromiter(map({}.setdefault, event_ids, count()), np.int64, len(event_ids))
    once = first_row == np.arange(len(event_ids))
    once[first_row[~once]] = False
    return once


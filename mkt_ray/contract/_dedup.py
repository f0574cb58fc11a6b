"""Duplicate detection: an event_id already accepted for its tenant within 24 h of event time."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import numpy as np

from mkt_ray.contract._groups import group_column

_CACHED_INT_MAX = 256  # CPython shares one int object for each value up to this


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
        ts_ms = np.asarray(ts_ms, np.int64)  # its tolist() makes one int object per row (see _mark_tenant)
        rows = np.arange(len(tenants)) if candidates is None else np.flatnonzero(candidates)
        for tenant, members in group_column(tenants[rows], rows):
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
        stamps = ts_ms.tolist()
        if int(ts_ms.min()) <= _CACHED_INT_MAX:  # see below; event times are never this small outside tests
            return self._mark_in_order(ids, event_ids, stamps, horizons.tolist())
        # One C pass records every id not yet present with its time. An id inserted by this row hands back
        # this row's own int object (a time above the small-int cache is a distinct object per row);
        # any other answer is the time of an earlier acceptance, from this batch or before.
        kept = list(map(ids.setdefault, event_ids, stamps))
        inserted = np.fromiter(map(operator.is_, kept, stamps), bool, len(stamps))
        if inserted.all():  # the usual batch: no id seen before
            return np.zeros(len(stamps), bool)
        # ids met before (or twice here) are decided row by row, in order, from their state before the batch
        involved = {event_ids[i] for i in np.flatnonzero(~inserted).tolist()}
        rows = np.flatnonzero(np.fromiter(map(involved.__contains__, event_ids), bool, len(event_ids)))
        for i in rows[inserted[rows]].tolist():
            del ids[event_ids[i]]  # inserted by its first occurrence here: absent before the batch
        duplicate = np.zeros(len(stamps), bool)
        duplicate[rows] = self._mark_in_order(
            ids, [event_ids[i] for i in rows.tolist()], [stamps[i] for i in rows.tolist()], horizons[rows].tolist())
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

"""Duplicate detection: an event_id already accepted for its tenant within 24 h of event time."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mkt_ray.contract._columns import utf8_buffers
from mkt_ray.contract._groups import group_column

_NO_WATERMARK = np.iinfo(np.int64).min
_MIN_SLOTS = 64  # 1.5 KB: a tenant with few events costs little
# A table is rebuilt, without the ids that left the window, before a batch would fill more than 80% of its
# slots, and sized so they fill at most half: each insert moves 1-2 entries over time, and in a steady
# state the table is under 50 bytes a live id (benchmarks/dedup.py)
_FULL, _ROOMY = 0.8, 0.5
_HASH, _LOW, _TS = 0, 1, 2  # a table row's columns as mkt_ray.kernels.dedup lays them out (HASH, LOW, TS); LOW 0 = empty


def _kernels():  # imported on first use: numba's import (0.5 s) is paid only by processes that decode events
    from mkt_ray.kernels import dedup

    return dedup


@dataclass(eq=False)
class _TenantIds:
    """One tenant's accepted ids: the hash table, its filled slots and the tenant's watermark."""

    table: np.ndarray = field(default_factory=lambda: np.zeros((_MIN_SLOTS, 3), np.int64))
    filled: int = 0
    watermark: int = _NO_WATERMARK

    def _filled_rows(self) -> np.ndarray:
        return self.table[self.table[:, _LOW] != 0]

    def entries(self) -> np.ndarray:
        """The filled slots' rows (hash halves, time), in hash order: what the table holds, whatever its layout."""
        used = self._filled_rows()
        return used[np.lexsort((used[:, _LOW], used[:, _HASH]))]

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, _TenantIds) and (self.filled, self.watermark) == (other.filled, other.watermark)
                and np.array_equal(self.entries(), other.entries()))

    def __getstate__(self) -> dict:
        """Pickled without its empty slots (a checkpoint 20-50% smaller); the table is rebuilt on loading."""
        return {"entries": self._filled_rows(), "slots": len(self.table), "watermark": self.watermark}

    def __setstate__(self, state: dict) -> None:
        self.table, self.filled = _kernels().rebuilt(state["entries"], _NO_WATERMARK, state["slots"])
        self.watermark = state["watermark"]

    def make_room(self, arriving: int, window_ms: int) -> None:
        if self.filled + arriving <= _FULL * len(self.table):
            return
        horizon = self.watermark - window_ms if self.watermark != _NO_WATERMARK else _NO_WATERMARK
        table = self.table
        live = int(np.count_nonzero((table[:, _LOW] != 0) & (table[:, _TS] >= horizon)))
        slots = max(_MIN_SLOTS, int((live + arriving) / _ROOMY) + 1)
        self.table, self.filled = _kernels().rebuilt(table, horizon, slots)


@dataclass
class DedupIndex:
    """Accepted event ids per tenant, with the event time each was first accepted at.

    A repeat is a duplicate while the original's event time is within `window_ms` of the tenant's
    highest event time seen so far (its watermark). An id is held as its 128-bit hash in a compiled
    open-addressing table (`mkt_ray.kernels.dedup`): 24 bytes a slot, 33-49 bytes an id. Entries
    older than the window are dropped when a table is rebuilt; the answer does not depend on when that
    happens, so a replay of the same stream decides the same way. Picklable (a few numpy arrays), so it
    is checkpointed with the offsets it covers; it holds no event id in the clear.
    """

    window_ms: int = 24 * 3_600_000
    tenants: dict[str, _TenantIds] = field(default_factory=dict)

    def mark_duplicates(self, tenants: np.ndarray, event_ids: np.ndarray, ts_ms: np.ndarray,
                        candidates: np.ndarray | None = None) -> np.ndarray:
        """Duplicate flags for the candidate events (all by default), in stream order; the others are recorded."""
        n = len(tenants)
        rows = None if candidates is None or candidates.all() else np.flatnonzero(candidates)
        if rows is not None:  # only the candidates' rows, in order
            tenants, event_ids, ts_ms = tenants[rows], event_ids[rows], np.asarray(ts_ms)[rows]
        if not len(tenants):
            return np.zeros(n, dtype=bool)
        kernels = _kernels()
        hashes = kernels.hash_texts(*utf8_buffers(np.asarray(event_ids, object).tolist()))  # from a list: 1.5x faster
        times = np.asarray(ts_ms, np.int64)
        marks = np.zeros(len(tenants), dtype=bool)
        for tenant, members in group_column(tenants, np.arange(len(tenants))):
            whole = len(members) == len(tenants)  # the usual batch: one tenant's events, no copy needed
            ids = self.tenants.setdefault(tenant, _TenantIds())
            ids.make_room(len(members), self.window_ms)
            flags, filled, ids.watermark = kernels.mark_in_order(
                ids.table, hashes if whole else hashes[members], times if whole else times[members],
                ids.watermark, self.window_ms)
            ids.filled += filled
            marks[members] = flags
        if rows is None:
            return marks
        flags = np.zeros(n, dtype=bool)
        flags[rows] = marks
        return flags

    def accepted_at(self, tenant: str, event_id: str) -> int | None:
        """The event time `event_id` was last accepted at for `tenant`, if the index still holds it."""
        ids = self.tenants.get(tenant)
        if ids is None:
            return None
        kernels = _kernels()
        first, second = kernels.hash_texts(*utf8_buffers([event_id]))[0]
        slot = kernels.probe(ids.table, first, second | 1)
        return int(ids.table[slot, _TS]) if ids.table[slot, _LOW] != 0 else None

    def __len__(self) -> int:
        """Ids held, including any older than the window not yet dropped."""
        return sum(ids.filled for ids in self.tenants.values())

    @property
    def nbytes(self) -> int:
        return sum(ids.table.nbytes for ids in self.tenants.values())

    def __setstate__(self, state: dict) -> None:
        """Restores a pickle of this class, or of the earlier one that kept the ids themselves in dicts
        (`seen`: tenant -> {event_id: ts}), as checkpoints written before this version hold."""
        if "seen" in state:
            old_seen, old_marks = state["seen"], state["watermark"]
            state = {"window_ms": state["window_ms"], "tenants": {}}
            self.__dict__.update(state)
            for tenant, ids in old_seen.items():
                self._restore(tenant, list(ids), np.fromiter(ids.values(), np.int64, len(ids)), old_marks[tenant])
            return
        self.__dict__.update(state)

    def _restore(self, tenant: str, event_ids: list[str], ts_ms: np.ndarray, watermark: int) -> None:
        ids = self.tenants.setdefault(tenant, _TenantIds())
        ids.make_room(len(event_ids), self.window_ms)
        kernels = _kernels()
        _, filled, _ = kernels.mark_in_order(ids.table, kernels.hash_texts(*utf8_buffers(event_ids)), ts_ms,
                                             _NO_WATERMARK, 0)
        ids.filled += filled
        ids.watermark = int(watermark)

"""Identity strings to integer slots: an open-addressing hash table over UTF-8 bytes, probed in Numba.

Why not a dict: mapping a batch's identity values through a Python dict cost ~0.25 µs a value on these
machines (a probe and a key comparison, each a cache miss), the largest part of online attribution.
Here a batch's values are joined into one byte string in C (`str.join`, one encode), and one compiled
call hashes (FNV-1a, the same in every process, so checkpoints restore anywhere), probes and inserts.

Layout (numpy arrays, so it pickles as is): key bytes live in `arena`; slot s owns
arena[start[s]:start[s] + length[s]] (length -1 = free slot); `table` holds slot + 1 (0 = empty,
-1 = deleted) at the probe position. Freed slots are reused first (`free` stack). The table is rebuilt
(dropping deleted marks) when live + deleted + incoming keys would pass half its size; the arena is
compacted when freed bytes outweigh live ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mkt_ray.kernels._jit import jit

ARENA_USED, LIVE, DELETED, FREED, SLOTS_USED, GARBAGE = range(6)  # `SlotTable.counters`
_FNV_OFFSET, _FNV_PRIME = np.uint64(0xCBF29CE484222325), np.uint64(0x100000001B3)
# small to start with (~7 KB): a tenant has several tables on its partition, and most tenants are small
_SLOTS = 64


@dataclass
class SlotTable:
    """Interns byte strings as integer slots."""

    arena: np.ndarray = field(default_factory=lambda: np.zeros(1 << 12, np.uint8))
    start: np.ndarray = field(default_factory=lambda: np.zeros(_SLOTS, np.int64))
    length: np.ndarray = field(default_factory=lambda: np.full(_SLOTS, -1, np.int64))
    table: np.ndarray = field(default_factory=lambda: np.zeros(4 * _SLOTS, np.int64))
    free: np.ndarray = field(default_factory=lambda: np.zeros(_SLOTS, np.int64))
    counters: np.ndarray = field(default_factory=lambda: np.zeros(6, np.int64))

    @property
    def capacity(self) -> int:
        return len(self.start)

    def intern(self, data: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Slots of the keys data[offsets[i]:offsets[i+1] - 1] (a separator byte after each, as
        `encode_keys` lays them out), inserting unknown ones; (slots, slots new to the table)."""
        self._reserve(len(offsets) - 1, len(data))
        return _intern(data, offsets, self.arena, self.start, self.length, self.table, self.free, self.counters)

    def lookup(self, key: bytes) -> int | None:
        """The slot of one key, None if absent."""
        data = np.frombuffer(key, np.uint8)
        slot = _lookup(data, self.arena, self.start, self.length, self.table)
        return None if slot < 0 else int(slot)

    def key(self, slot: int) -> bytes:
        if self.length[slot] < 0:
            raise KeyError(f"slot {slot} is free")
        return self.arena[self.start[slot]:self.start[slot] + self.length[slot]].tobytes()

    def texts(self, slots: np.ndarray) -> list[str]:
        """The keys of these slots as text: gathered by one compiled call, decoded and split once."""
        if not len(slots):
            return []
        gathered = _gather(np.asarray(slots, np.int64), self.arena, self.start, self.length)
        return gathered.tobytes().decode().split("\0")[:-1]

    def remove(self, slots: np.ndarray) -> None:
        """Free these slots (their keys leave the table)."""
        _remove(np.asarray(slots, np.int64), self.arena, self.start, self.length, self.table, self.free, self.counters)

    def _reserve(self, keys: int, key_bytes: int) -> None:
        c = self.counters
        if c[GARBAGE] > c[ARENA_USED] - c[GARBAGE] and c[GARBAGE] > (1 << 20):
            self.arena = _compacted_arena(self.arena, self.start, self.length, c)
        if c[ARENA_USED] + key_bytes > len(self.arena):
            self.arena = _grown(self.arena, c[ARENA_USED] + key_bytes, 0)
        if c[SLOTS_USED] + keys > len(self.start):
            size = c[SLOTS_USED] + keys
            self.start, self.free = _grown(self.start, size, 0), _grown(self.free, size, 0)
            self.length = _grown(self.length, size, -1)
        if 2 * (c[LIVE] + c[DELETED] + keys) > len(self.table):
            size = 1 << max(8, int(4 * (c[LIVE] + keys)).bit_length())
            self.table = _rehashed(size, self.arena, self.start, self.length, c)


def _grown(values: np.ndarray, need: int, fill: int) -> np.ndarray:
    size = max(int(need), 2 * len(values))
    return np.concatenate([values, np.full(size - len(values), fill, values.dtype)])


@jit
def _hash(data, lo, hi):
    h = _FNV_OFFSET
    for i in range(lo, hi):
        h = (h ^ np.uint64(data[i])) * _FNV_PRIME
    return h


@jit
def _find(data, lo, hi, h, arena, start, length, table):
    """The slot holding data[lo:hi], or -(probe position) - 1 of the first empty place."""
    mask = np.uint64(table.shape[0] - 1)
    pos = np.int64(h & mask)
    n = hi - lo
    while table[pos] != 0:
        slot = table[pos] - 1
        if slot >= 0 and length[slot] == n:
            at = start[slot]
            same = True
            for i in range(n):
                if arena[at + i] != data[lo + i]:
                    same = False
                    break
            if same:
                return slot
        pos = (pos + 1) & np.int64(mask)
    return -pos - 1


@jit
def _lookup(data, arena, start, length, table):
    return _find(data, 0, data.shape[0], _hash(data, 0, data.shape[0]), arena, start, length, table)


@jit
def _intern(data, offsets, arena, start, length, table, free, counters):
    n = offsets.shape[0] - 1
    slots = np.empty(n, np.int64)
    new = np.empty(n, np.int64)
    n_new = 0
    for i in range(n):
        lo, hi = offsets[i], offsets[i + 1] - 1
        found = _find(data, lo, hi, _hash(data, lo, hi), arena, start, length, table)
        if found >= 0:
            slots[i] = found
            continue
        if counters[FREED] > 0:
            counters[FREED] -= 1
            slot = free[counters[FREED]]
        else:
            slot = counters[SLOTS_USED]
            counters[SLOTS_USED] += 1
        at = counters[ARENA_USED]
        arena[at:at + hi - lo] = data[lo:hi]
        counters[ARENA_USED] += hi - lo
        start[slot], length[slot] = at, hi - lo
        table[-found - 1] = slot + 1
        counters[LIVE] += 1
        slots[i] = slot
        new[n_new] = slot
        n_new += 1
    return slots, new[:n_new].copy()


@jit
def _gather(slots, arena, start, length):
    """The keys of slots, each followed by a NUL byte."""
    total = 0
    for slot in slots:
        if length[slot] < 0:
            raise KeyError("a slot is free")
        total += length[slot] + 1
    out = np.zeros(total, np.uint8)
    at = 0
    for slot in slots:
        out[at:at + length[slot]] = arena[start[slot]:start[slot] + length[slot]]
        at += length[slot] + 1
    return out


@jit
def _remove(slots, arena, start, length, table, free, counters):
    for slot in slots:
        lo = start[slot]
        hi = lo + length[slot]
        mask = np.int64(table.shape[0] - 1)
        pos = np.int64(_hash(arena, lo, hi) & np.uint64(mask))
        while table[pos] != slot + 1:
            pos = (pos + 1) & mask
        table[pos] = -1
        counters[LIVE] -= 1
        counters[DELETED] += 1
        counters[GARBAGE] += length[slot]
        length[slot] = -1
        free[counters[FREED]] = slot
        counters[FREED] += 1


@jit
def _rehashed(size, arena, start, length, counters):
    table = np.zeros(size, np.int64)
    mask = np.uint64(size - 1)
    for slot in range(counters[SLOTS_USED]):
        if length[slot] >= 0:
            lo = start[slot]
            pos = np.int64(_hash(arena, lo, lo + length[slot]) & mask)
            while table[pos] != 0:
                pos = (pos + 1) & np.int64(mask)
            table[pos] = slot + 1
    counters[DELETED] = 0
    return table


@jit
def _compacted_arena(arena, start, length, counters):
    out = np.zeros(arena.shape[0], np.uint8)
    at = 0
    for slot in range(counters[SLOTS_USED]):
        n = length[slot]
        if n >= 0:
            out[at:at + n] = arena[start[slot]:start[slot] + n]
            start[slot] = at
            at += n
    counters[ARENA_USED], counters[GARBAGE] = at, 0
    return out


def encode_keys(prefix: str, values: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 bytes of the keys prefix + value and where each starts (one more entry: the end).

    One join, one encode and a vector search for the NUL separators; values holding a NUL (valid
    JSON, never seen in practice) take a slower per-value path.
    """
    joined = prefix + ("\0" + prefix).join(values) + "\0" if values else ""
    data = np.frombuffer(joined.encode(), np.uint8)
    if joined.count("\0") == len(values):
        ends = np.flatnonzero(data == 0)
    else:
        data = np.frombuffer(b"".join(f"{prefix}{v}".encode() + b"\0" for v in values), np.uint8)
        ends = np.cumsum([len(f"{prefix}{v}".encode()) + 1 for v in values], dtype=np.int64) - 1
    starts = np.zeros(len(values) + 1, np.int64)
    starts[1:] = ends + 1
    return data, starts

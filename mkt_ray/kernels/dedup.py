"""Duplicate detection's compiled half: 128-bit hashes of event ids and an open-addressing table of them.

Pure functions over arrays; numpy and numba only. An id is kept as the MurmurHash3 x64_128 (seed 0) of
its UTF-8 bytes, so the table holds three int64 a slot (the hash's two halves and the event time the id
was accepted at) wherever a dict of the ids themselves holds a string object, an int object and the dict's
own slot: 24 bytes a slot, filled between 1/2 and 4/5; measured 33-49 bytes an id against 148
(benchmarks/dedup.py, 36-character ids). Two different ids of one tenant share a hash with probability
about n^2 / 2^128 (n ids in the window, ~3e-21 for a billion); the second of such a pair would be counted
a duplicate.

A slot is empty while its second half is 0; every stored hash has that half's low bit set (127 bits
stay). Linear probing from `(first half mod capacity)`; the table is rebuilt, never deleted from.
"""

from __future__ import annotations

import numpy as np

from mkt_ray.kernels._jit import jit

_C1 = np.uint64(0x87C37B91114253D5)
_C2 = np.uint64(0x4CF5AD432745937F)
_F1 = np.uint64(0xFF51AFD7ED558CCD)
_F2 = np.uint64(0xC4CEB9FE1A85EC53)
_N1 = np.uint64(0x52DCE729)
_N2 = np.uint64(0x38495AB5)
_FIVE = np.uint64(5)
HASH, LOW, TS = 0, 1, 2  # the columns of a table row


@jit
def _rotl(x: np.uint64, r: int) -> np.uint64:
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


@jit
def _fmix(k: np.uint64) -> np.uint64:
    k ^= k >> np.uint64(33)
    k *= _F1
    k ^= k >> np.uint64(33)
    k *= _F2
    k ^= k >> np.uint64(33)
    return k


@jit
def _word(data: np.ndarray, start: int, count: int) -> np.uint64:
    """`count` (<= 8) bytes from `start` as a little-endian integer."""
    value = np.uint64(0)
    for j in range(count):
        value |= np.uint64(data[start + j]) << np.uint64(8 * j)
    return value


@jit
def _murmur3_128(data: np.ndarray, start: int, end: int) -> tuple[np.uint64, np.uint64]:
    length = end - start
    h1 = np.uint64(0)
    h2 = np.uint64(0)
    p = start
    while p + 16 <= end:
        k1 = _rotl(_word(data, p, 8) * _C1, 31) * _C2
        h1 = (_rotl(h1 ^ k1, 27) + h2) * _FIVE + _N1
        k2 = _rotl(_word(data, p + 8, 8) * _C2, 33) * _C1
        h2 = (_rotl(h2 ^ k2, 31) + h1) * _FIVE + _N2
        p += 16
    rest = end - p
    if rest > 8:
        h2 ^= _rotl(_word(data, p + 8, rest - 8) * _C2, 33) * _C1
    if rest > 0:
        h1 ^= _rotl(_word(data, p, min(rest, 8)) * _C1, 31) * _C2
    h1 ^= np.uint64(length)
    h2 ^= np.uint64(length)
    h1 += h2
    h2 += h1
    h1 = _fmix(h1)
    h2 = _fmix(h2)
    h1 += h2
    h2 += h1
    return h1, h2


@jit
def hash_texts(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """MurmurHash3 x64_128 (seed 0) of each text `data[offsets[i]:offsets[i + 1]]` (an Arrow string column's
    buffers), as rows of two int64: the hash's first and second 64-bit halves, bit for bit."""
    n = len(offsets) - 1
    out = np.empty((n, 2), np.uint64)
    for i in range(n):
        out[i, 0], out[i, 1] = _murmur3_128(data, offsets[i], offsets[i + 1])
    return out.view(np.int64)


@jit
def probe(table: np.ndarray, first: np.int64, second: np.int64) -> int:
    """The slot holding this hash, or the empty slot where it would go."""
    capacity = table.shape[0]
    slot = (first & np.int64(0x7FFFFFFFFFFFFFFF)) % capacity
    while table[slot, LOW] != 0 and (table[slot, HASH] != first or table[slot, LOW] != second):
        slot += 1
        if slot == capacity:
            slot = 0
    return slot


@jit
def mark_in_order(table: np.ndarray, hashes: np.ndarray, ts_ms: np.ndarray, watermark: int,
                  window_ms: int) -> tuple[np.ndarray, int, int]:
    """Duplicate flags of one tenant's events in stream order, recording the others in `table` (which must
    have room for all of them). An event is a duplicate when its hash was accepted at a time no older than
    `window_ms` before the highest event time so far (`watermark`, this event's included); otherwise its
    time is recorded. Returns the flags, how many slots were filled, and the new watermark."""
    flags = np.zeros(len(ts_ms), np.bool_)
    filled = 0
    for i in range(len(ts_ms)):
        ts = ts_ms[i]
        if ts > watermark:
            watermark = ts
        second = hashes[i, 1] | 1
        slot = probe(table, hashes[i, 0], second)
        if table[slot, LOW] == 0:
            table[slot, HASH], table[slot, LOW], table[slot, TS] = hashes[i, 0], second, ts
            filled += 1
        elif table[slot, TS] >= watermark - window_ms:
            flags[i] = True
        else:
            table[slot, TS] = ts
    return flags, filled, watermark


@jit
def rebuilt(table: np.ndarray, horizon: int, capacity: int) -> tuple[np.ndarray, int]:
    """A table of `capacity` slots holding the entries of `table` accepted at or after `horizon`, and how
    many those are. Entries older than that can never make a duplicate again (the horizon only rises)."""
    out = np.zeros((capacity, 3), np.int64)
    kept = 0
    for s in range(table.shape[0]):
        if table[s, LOW] != 0 and table[s, TS] >= horizon:
            slot = probe(out, table[s, HASH], table[s, LOW])
            out[slot, HASH], out[slot, LOW], out[slot, TS] = table[s, HASH], table[s, LOW], table[s, TS]
            kept += 1
    return out, kept

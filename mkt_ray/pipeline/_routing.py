"""Which tenant shard owns a tenant: a stable hash, the same in every process and after every restart."""

from __future__ import annotations

import zlib

import numpy as np

from mkt_ray.contract import EventColumns


def shard_for(tenant_id: str, shards: int) -> int:
    """The shard (0..shards-1) that owns `tenant_id` (CRC-32: stable across processes, unlike hash())."""
    return zlib.crc32(tenant_id.encode()) % shards


def split_by_shard(events: EventColumns, shards: int) -> dict[int, EventColumns]:
    """The batch's events grouped by owning shard, each group in the batch's order."""
    tenants = events["tenant_id"]
    owner = {t: shard_for(t, shards) for t in set(tenants.tolist())}
    codes = np.fromiter(map(owner.__getitem__, tenants), np.int64, len(tenants))
    return {s: events.take(codes == s) for s in sorted(set(owner.values()))}

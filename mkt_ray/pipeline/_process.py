"""Process-wide tuning of the pipeline's actor processes (ingest members, tenant shards, the store)."""

from __future__ import annotations

import pyarrow as pa


def use_system_arrow_pool() -> None:
    """Arrow allocates from the C library's malloc in this process instead of its bundled mimalloc.

    A batch allocates and frees hundreds of MB of Arrow buffers (archive tables, shard slices, inserts);
    mimalloc hands freed pages back to the kernel at once and faults them in again for the next batch,
    system CPU that showed as ~1.2 µs an event of an ingest member (`python -m benchmarks.pipeline`, three
    alternating runs on the 2-core machine: 14.8-17.4 µs of platform CPU an event before, 13.5-16.2 after).
    """
    pa.set_memory_pool(pa.system_memory_pool())

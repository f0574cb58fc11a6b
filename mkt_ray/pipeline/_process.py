"""Process-wide tuning of the pipeline's actor processes (ingest members, tenant shards, the store)."""

from __future__ import annotations

import pyarrow as pa


def use_system_arrow_pool() -> None:
    """Arrow allocates from the C library's malloc in this process instead of its bundled mimalloc.

    A batch allocates and frees hundreds of MB of Arrow buffers (archive tables, shard slices, inserts);
    mimalloc hands freed pages back to the kernel at once and faults them in again for the next batch,
    which showed as system CPU. `python -m benchmarks.pipeline --skip-quix`, three alternating pairs on
    the 2-core machine: ingest members 10.5-12.6 CPU s per 1M events before, 9.4-11.4 after, in every
    pair ~1.1 s less; peak resident memory of a member unchanged (1.2-1.3 GB with 100k-message batches).
    """
    pa.set_memory_pool(pa.system_memory_pool())

"""A raw Parquet store filled from a seeded synthetic workload, without running the streaming platform.

The lines go through the contract's `BatchDecoder` (the pipeline's decoder: valid, first-seen events
only, tenants keyed to one partition as Kafka's `key = tenant_id` does) and `archive_events` (the
archiver's writer), so the store has exactly the layout and rows the pipeline would archive. Used by
the tests and `benchmarks/training.py` to build training inputs of a known ground truth quickly
(about 1 s per 100k events on one core).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from mkt_ray.contract import BatchDecoder
from mkt_ray.rawstore import archive_events, slice_name
from mkt_ray.workload import generate_workload


def archive_workload(uri: str, n_events: int, tenants: list[str], seed: int, now: datetime,
                     jsonl: Path | None = None, invalid_share: float = 0.03) -> dict[str, Any]:
    """Generate `n_events` messages, archive the valid ones under `uri` (and write every line to `jsonl`
    if given, for the offline readers); the workload's ground truth."""
    workload = generate_workload(n_events, tenants, seed, now, invalid_share=invalid_share)
    decoder = BatchDecoder(tenants)
    partition_of = {tenant: i for i, tenant in enumerate(tenants)}
    offset = 0
    now_ms = round(now.timestamp() * 1000)
    out = open(jsonl, "wb") if jsonl is not None else None  # noqa: SIM115 (closed below, after the loop)
    for lines in workload.batches(50_000):
        if out is not None:
            out.write(b"".join(line + b"\n" for line in lines))
        decoded = decoder.decode(lines, np.zeros(len(lines), np.int32), offset + np.arange(len(lines)), now_ms)
        events = decoded.events
        events.data["partition"] = np.fromiter((partition_of[t] for t in events["tenant_id"].tolist()), np.int32,
                                               len(events))
        for part in np.unique(events["partition"]).tolist():
            piece = events.take(events["partition"] == part)
            archive_events(piece, uri, slice_name(part, int(piece["offset"][0]), int(piece["offset"][-1])))
        offset += len(lines)
    if out is not None:
        out.close()
    return workload.truth

"""Per-batch KPI rows: valid events summed by partition, tenant, campaign, source and minute."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from mkt_ray.contract import EventColumns
from mkt_ray.kernels import group_sums
from mkt_ray.pipeline._tables import KPI_1M_SCHEMA, KPI_AMOUNTS, KPI_COUNTS

MINUTE_MS = 60_000


def factorize(*columns: np.ndarray) -> tuple[np.ndarray, list[tuple]]:
    """Integer group codes for the row-wise tuples of these columns, and the distinct tuples in code order."""
    index: dict[tuple, int] = {}
    codes = np.fromiter(
        (index.setdefault(key, len(index)) for key in zip(*(c.tolist() for c in columns), strict=True)),
        np.int64,
        len(columns[0]),
    )
    return codes, list(index)


def kpi_minute_table(events: EventColumns, ranges: dict[int, tuple[int, int]], applied_ms: int) -> pa.Table:
    """KPI rows of one applied batch, plus one ledger row for each partition slice without valid events.

    `ranges` maps each partition in the batch to the (first, last) offsets it covered, rejects included.
    """
    campaign = np.where(np.equal(events["campaign_id"], None), "", events["campaign_id"])
    source = np.where(np.equal(events["source"], None), "", events["source"])
    window = events["ts_ms"] // MINUTE_MS * MINUTE_MS
    codes, keys = factorize(events["partition"], events["tenant_id"], campaign, source, window)
    counts = np.zeros((len(keys), len(KPI_COUNTS)), np.int64)
    amounts = np.zeros((len(keys), len(KPI_AMOUNTS)), np.float64)
    metric_counts = np.column_stack([np.ones(len(events), np.int64), *(events[n] for n in KPI_COUNTS[1:])])
    metric_amounts = np.column_stack([events[n] for n in KPI_AMOUNTS]) if len(events) else np.zeros((0, 2))
    group_sums(codes, metric_counts.reshape(len(events), len(KPI_COUNTS)), metric_amounts, counts, amounts)
    covered = {key[0] for key in keys}
    keys += [(p, "", "", "", 0) for p in ranges if p not in covered]
    counts = np.vstack([counts, np.zeros((len(keys) - len(counts), len(KPI_COUNTS)), np.int64)])
    amounts = np.vstack([amounts, np.zeros((len(keys) - len(amounts), len(KPI_AMOUNTS)))])
    partitions = [k[0] for k in keys]
    columns = {
        "tenant_id": [k[1] for k in keys],
        "campaign_id": [k[2] for k in keys],
        "source": [k[3] for k in keys],
        "window_start_ms": [k[4] for k in keys],
        **{name: counts[:, j] for j, name in enumerate(KPI_COUNTS)},
        **{name: amounts[:, j] for j, name in enumerate(KPI_AMOUNTS)},
        "partition": partitions,
        "first_offset": [ranges[p][0] for p in partitions],
        "last_offset": [ranges[p][1] for p in partitions],
        "applied_ms": [applied_ms] * len(keys),
    }
    return pa.table(columns, schema=KPI_1M_SCHEMA)

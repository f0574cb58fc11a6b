"""Per-batch KPI window rows: valid events summed by partition, tenant, campaign, source and window.

Every window kind of `WINDOW_KINDS` (tumbling 1 m and 1 h, sliding 5 m every 1 m) gets rows; each row
carries the partition and offset range of the batch it came from (the ledger). The warehouse sums rows
of the same window across batches, so a late event simply adds to its window's total.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from mkt_ray.contract import EventColumns, factorize, is_none
from mkt_ray.kernels import WINDOW_KINDS, window_sums
from mkt_ray.pipeline._tables import KPI_AMOUNTS, KPI_COUNTS, KPI_SCHEMA

LEDGER_WINDOW = "ledger"  # rows that only record an applied offset range


def _metric_arrays(events: EventColumns) -> tuple[np.ndarray, np.ndarray]:
    n = len(events)
    counts = np.empty((n, len(KPI_COUNTS)), np.int64)
    counts[:, 0] = 1  # events
    for j, name in enumerate(KPI_COUNTS[1:], start=1):
        counts[:, j] = events[name]
    amounts = np.empty((n, len(KPI_AMOUNTS)), np.float64)
    for j, name in enumerate(KPI_AMOUNTS):
        amounts[:, j] = events[name]
    return counts, amounts


def kpi_window_rows(
    events: EventColumns,
    ranges: dict[int, tuple[int, int]],
    applied_ms: int,
    watermarks: dict[int, int] | None = None,
    ledger: bool = True,
) -> pa.Table:
    """Rows of every window kind for one batch, plus one ledger row per partition slice it covered.

    `ranges` maps each partition in the batch to the (first, last) offsets applied, rejects included.
    A ledger row's `window_start_ms` holds its partition's watermark (highest valid event time) after
    the batch, so a restarted shard knows which windows had closed.
    Columns are assembled with numpy indexing, never row by row: a batch spread over hours of event
    time yields tens of thousands of rows.
    """
    campaign = np.where(is_none(events["campaign_id"]), "", events["campaign_id"])
    source = np.where(is_none(events["source"]), "", events["source"])
    codes, keys = factorize(events["partition"], events["tenant_id"], campaign, source)
    key_columns = [_objects(col) for col in zip(*keys, strict=True)] if keys else [np.zeros(0, object)] * 4
    counts, amounts = _metric_arrays(events)
    pieces: dict[str, list[np.ndarray]] = {name: [] for name in KPI_SCHEMA.names}
    for name, size_ms, step_ms in WINDOW_KINDS:
        group, start, sums, money = window_sums(codes, events["ts_ms"], counts, amounts, size_ms, step_ms)
        pieces["window"].append(np.full(len(group), name, dtype=object))
        for column, values in zip(("partition", "tenant_id", "campaign_id", "source"), key_columns, strict=True):
            pieces[column].append(values[group])
        pieces["window_start_ms"].append(start)
        for j, metric in enumerate(KPI_COUNTS):
            pieces[metric].append(sums[:, j])
        for j, metric in enumerate(KPI_AMOUNTS):
            pieces[metric].append(money[:, j])
    if ledger:
        _append_ledger_rows(pieces, list(ranges), watermarks or {})
    columns = {name: np.concatenate(parts) if parts else np.zeros(0) for name, parts in pieces.items() if parts}
    partition = columns["partition"].astype(np.int64)
    columns["first_offset"] = np.array([ranges[p][0] for p in partition.tolist()], np.int64)
    columns["last_offset"] = np.array([ranges[p][1] for p in partition.tolist()], np.int64)
    columns["applied_ms"] = np.full(len(partition), applied_ms, np.int64)
    return pa.table({name: pa.array(columns[name], type=KPI_SCHEMA.field(name).type) for name in KPI_SCHEMA.names},
                    schema=KPI_SCHEMA)


def _objects(values: tuple) -> np.ndarray:
    return np.fromiter(values, dtype=object, count=len(values))


def _append_ledger_rows(pieces: dict[str, list[np.ndarray]], partitions: list[int], watermarks: dict[int, int]) -> None:
    """One row per partition slice with zero metrics: records the applied range even with no valid event."""
    n = len(partitions)
    pieces["window"].append(np.full(n, LEDGER_WINDOW, dtype=object))
    pieces["partition"].append(np.array(partitions, dtype=object))
    for column in ("tenant_id", "campaign_id", "source"):
        pieces[column].append(np.full(n, "", dtype=object))
    pieces["window_start_ms"].append(np.array([watermarks.get(p, 0) for p in partitions], np.int64))
    for metric in KPI_COUNTS:
        pieces[metric].append(np.zeros(n, np.int64))
    for metric in KPI_AMOUNTS:
        pieces[metric].append(np.zeros(n, np.float64))


def warm_up() -> None:
    """Build window rows for two tiny batches, one on each kernel path (dense, and sparse: two events a
    year apart), so that a process loads its Numba kernels and Arrow conversions before its first
    real batch instead of in it (about a second of a fresh shard's first call)."""
    minute, year = 60_000, 365 * 86_400_000
    for later in (minute, year):
        columns = {"partition": np.zeros(2, np.int32), "tenant_id": _objects(("t", "t")),
                   "campaign_id": _objects(("c", None)), "source": _objects(("s", "s")),
                   "ts_ms": np.array([0, later], np.int64)}
        columns.update({name: np.ones(2, np.int64) for name in KPI_COUNTS[1:]})
        columns.update({name: np.ones(2, np.float64) for name in KPI_AMOUNTS})
        kpi_window_rows(EventColumns(columns), {0: (0, 1)}, 0, ledger=False)

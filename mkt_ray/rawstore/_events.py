"""Archived events back into the pipeline's columnar form, for replay and backfill.

`read_events` is the inverse of `archive_events`: the same `EventColumns` the pipeline applied, in
the order it applied them (partition, then offset), so replaying them through the pipeline's own
functions reproduces what the live run computed.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mkt_ray.contract import EVENT_TYPE_CODE, EventColumns, arrow_schema
from mkt_ray.rawstore._archive import day_of, raw_dataset


def read_events(uri: str, tenant_id: str, since_ms: int, until_ms: int, key: bytes | None = None) -> EventColumns:
    """One tenant's archived events with since_ms <= ts_ms < until_ms, in applied order."""
    import pyarrow.dataset as ds  # imported here: pyarrow.dataset imports pandas (see raw_partitioning)

    condition = ((ds.field("tenant_id") == tenant_id) & (ds.field("date") >= day_of(since_ms))
                 & (ds.field("date") <= day_of(until_ms)) & (ds.field("ts_ms") >= since_ms) & (ds.field("ts_ms") < until_ms))
    table = raw_dataset(uri, key).to_table(filter=condition)
    return events_from_arrow(table.sort_by([("partition", "ascending"), ("offset", "ascending")]))


def events_from_arrow(table: pa.Table) -> EventColumns:
    """EventColumns from raw-store rows (event_type as text or dictionary, partition columns restored)."""
    data: dict[str, np.ndarray] = {}
    for field in arrow_schema():
        column = table[field.name]
        if field.name == "event_type":
            names = pc.cast(column, pa.string()).to_pylist()
            data["event_type"] = np.fromiter(map(EVENT_TYPE_CODE.__getitem__, names), np.int8, len(names))
        elif pa.types.is_string(field.type):
            data[field.name] = np.array(column.to_pylist(), dtype=object)
        else:
            data[field.name] = column.to_numpy(zero_copy_only=False).astype(field.type.to_pandas_dtype())
    data["schema_version"] = data["schema_version"].astype(np.int64)  # as the decoder produces it
    return EventColumns(data)

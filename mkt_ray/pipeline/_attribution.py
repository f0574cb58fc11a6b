"""Attribution inside the pipeline: each Kafka partition keeps its tenants' attribution engines.

A tenant's events share a partition (key = tenant_id), so the engines travel with the partition's decoder
state: they are checkpointed with it and rebuilt by the same replay after a takeover, which is what makes
credits exact under kills (tests/actors/test_pipeline_faults.py). Offsets a restart only replays update
the engines but emit no rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from mkt_ray.attribution._online import CREDIT_SCHEMA, TenantAttribution
from mkt_ray.contract import DecoderState, EventColumns
from mkt_ray.settings import TenantConfig

ATTRIBUTION = "attribution_credits"
CREDIT_TABLE_SCHEMA = CREDIT_SCHEMA.append(pa.field("touch_index", pa.int32()))


@dataclass
class PartitionState:
    """What one Kafka partition's processing remembers: decoder state and attribution engines."""

    decoder: DecoderState = field(default_factory=DecoderState)
    attribution: dict[str, TenantAttribution] = field(default_factory=dict)


def attribute_partition(
    state: PartitionState, events: EventColumns, tenants: Mapping[str, TenantConfig], applied: int
) -> pa.Table:
    """Credit rows for one partition's valid (enriched) events, in order; offsets <= `applied` emit nothing."""
    tables = []
    for tenant in dict.fromkeys(events["tenant_id"].tolist()):
        engine = state.attribution.get(tenant)
        if engine is None:
            engine = state.attribution[tenant] = TenantAttribution(tenants.get(tenant) or TenantConfig())
        rows = engine.apply(events.take(events["tenant_id"] == tenant))
        if rows.num_rows:
            tables.append(rows.filter(pa.compute.greater(rows["offset"], applied)))
    return with_touch_index(pa.concat_tables(tables) if tables else CREDIT_SCHEMA.empty_table())


def with_touch_index(rows: pa.Table) -> pa.Table:
    """Number each conversion's rows per model (0, 1, ...): with the conversion's partition and offset and
    the model, the identity of a credit row, so a replayed row replaces instead of adding."""
    keys = zip(rows["partition"].to_pylist(), rows["offset"].to_pylist(), rows["model"].to_pylist(), strict=True)
    seen: dict[tuple, int] = {}
    index = np.fromiter((_next(seen, key) for key in keys), np.int32, rows.num_rows)
    return rows.append_column("touch_index", pa.array(index, pa.int32()))


def _next(seen: dict[tuple, int], key: tuple) -> int:
    seen[key] = seen.get(key, -1) + 1
    return seen[key]


def credit_ddl(database: str) -> str:
    return f"""CREATE TABLE IF NOT EXISTS {database}.{ATTRIBUTION} (
        tenant_id LowCardinality(String), conversion_id String, person String, model LowCardinality(String),
        channel LowCardinality(String), campaign_id Nullable(String), touch_ts_ms Nullable(Int64),
        conversion_ts_ms Int64, weight Float64, conversions_credit Float64, revenue_credit Float64,
        fallback Bool, partition Int32, offset Int64, touch_index Int32
    ) ENGINE = ReplacingMergeTree ORDER BY (tenant_id, partition, offset, model, touch_index)"""

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
import pyarrow.compute as pc

from mkt_ray.attribution._online import CREDIT_SCHEMA, LINKED_CREDIT_SCHEMA, Forgotten, TenantAttribution
from mkt_ray.contract import DecoderState, EventColumns, group_column
from mkt_ray.settings import TenantConfig

ATTRIBUTION = "attribution_credits"
SUMMARY = "attribution_summary"
SUMMARY_COLUMNS = ("conversions", "revenue", "touchpoints", "credited_conversions", "fallback_conversions")
CREDIT_TABLE_SCHEMA = CREDIT_SCHEMA.append(pa.field("touch_index", pa.int32()))


@dataclass
class PartitionState:
    """What one Kafka partition's processing remembers: decoder state and attribution engines."""

    decoder: DecoderState = field(default_factory=DecoderState)
    attribution: dict[str, TenantAttribution] = field(default_factory=dict)

    def engine(self, tenant_id: str, tenants: Mapping[str, TenantConfig]) -> TenantAttribution:
        """The tenant's attribution engine on this partition, created with its settings on first use."""
        engine = self.attribution.get(tenant_id)
        if engine is None:
            engine = self.attribution[tenant_id] = TenantAttribution(tenants.get(tenant_id) or TenantConfig())
        return engine

    def forget(self, tenant_id: str, identity: str, tenants: Mapping[str, TenantConfig],
               through: Mapping[int, int] | None = None) -> Forgotten:
        """Right to be forgotten for one tenant's identity (see `TenantAttribution.forget_person`).

        The tombstones travel with this state into checkpoints; save one right after (or re-apply the
        engine's `forgotten` bounds to state restored from before the request).
        """
        return self.engine(tenant_id, tenants).forget_person(identity, through)


def attribute_partition(
    state: PartitionState, events: EventColumns, tenants: Mapping[str, TenantConfig], applied: int
) -> pa.Table:
    """Credit rows for one partition's valid (enriched) events, in order; offsets <= `applied` emit nothing.

    Columns: CREDIT_TABLE_SCHEMA's and `link` (how the touchpoint joined the journey)."""
    tables = []
    groups = group_column(events["tenant_id"], np.arange(len(events)))
    for tenant, members in groups:  # a partition usually holds one tenant: then its events are all the events
        rows = state.engine(tenant, tenants).apply(events if len(groups) == 1 else events.take(members))
        if rows.num_rows:
            if "link" not in rows.column_names:  # tenants without probabilistic matching: every link deterministic
                rows = rows.append_column(LINKED_CREDIT_SCHEMA.field("link"),
                                          pa.array(["deterministic"] * rows.num_rows, pa.string()))
            tables.append(rows.filter(pc.greater(rows["offset"], applied)))
    return with_touch_index(pa.concat_tables(tables) if tables else LINKED_CREDIT_SCHEMA.empty_table())


def with_touch_index(rows: pa.Table) -> pa.Table:
    """Number each conversion's rows per model (0, 1, ...): with the conversion's partition and offset and
    the model, the identity of a credit row, so a replayed row replaces instead of adding.

    Column-wise: a stable sort by (partition, offset, model) keeps each key's rows in table order, and a
    row's number is its distance from the start of its key's run (a Python loop cost ~0.3 µs a row)."""
    n = rows.num_rows
    model = pc.dictionary_encode(rows["model"].combine_chunks()).indices.to_numpy(zero_copy_only=False)
    partition, offset = rows["partition"].to_numpy(), rows["offset"].to_numpy()
    order = np.lexsort((model, offset, partition))
    starts = np.ones(n, bool)
    starts[1:] = np.diff(partition[order]) != 0
    starts[1:] |= np.diff(offset[order]) != 0
    starts[1:] |= np.diff(model[order]) != 0
    run_start = np.flatnonzero(starts)[np.cumsum(starts) - 1] if n else np.zeros(0, np.int64)
    index = np.empty(n, np.int32)
    index[order] = np.arange(n) - run_start
    return rows.append_column("touch_index", pa.array(index, pa.int32()))


def credit_ddl(database: str) -> str:
    return f"""CREATE TABLE IF NOT EXISTS {database}.{ATTRIBUTION} (
        tenant_id LowCardinality(String), conversion_id String, person String, model LowCardinality(String),
        channel LowCardinality(String), campaign_id Nullable(String), touch_ts_ms Nullable(Int64),
        conversion_ts_ms Int64, weight Float64, conversions_credit Float64, revenue_credit Float64,
        fallback Bool, partition Int32, offset Int64, touch_index Int32,
        link LowCardinality(String) DEFAULT 'deterministic'
    ) ENGINE = ReplacingMergeTree ORDER BY (tenant_id, partition, offset, model, touch_index)"""


def credit_link_ddl(database: str) -> str:
    """Adds `link` to a credits table created before it existed (a no-op otherwise)."""
    return (f"ALTER TABLE {database}.{ATTRIBUTION} ADD COLUMN IF NOT EXISTS link LowCardinality(String) "
            f"DEFAULT 'deterministic'")


def summary_ddl(database: str) -> str:
    """Per tenant, model and channel: credited conversions and revenue, touchpoints, and how many
    conversions fell back to linear. A view over the deduplicated credits (`FINAL`), not a
    materialized one: a replayed batch's rows replace their first copy in the credits table, while a
    materialized view would add them a second time."""
    return f"""CREATE VIEW IF NOT EXISTS {database}.{SUMMARY} AS
        SELECT tenant_id, model, channel, sum(conversions_credit) AS conversions, sum(revenue_credit) AS revenue,
               count() AS touchpoints, uniqExact(partition, offset) AS credited_conversions,
               uniqExactIf((partition, offset), fallback) AS fallback_conversions
        FROM {database}.{ATTRIBUTION} FINAL GROUP BY tenant_id, model, channel"""


def summary_sql(database: str) -> str:
    """The summary view's rows, ordered: (tenant_id, model, channel, *SUMMARY_COLUMNS)."""
    return (f"SELECT tenant_id, model, channel, {', '.join(SUMMARY_COLUMNS)} FROM {database}.{SUMMARY} "
            f"ORDER BY tenant_id, model, channel")


def nest_summary(rows: list[tuple]) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """{tenant: {model: {channel: {column: value}}}} from `summary_sql` rows (counts as int)."""
    out: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for tenant, model, channel, *values in rows:
        out.setdefault(tenant, {}).setdefault(model, {})[channel] = {
            name: float(value) if name in ("conversions", "revenue") else int(value)
            for name, value in zip(SUMMARY_COLUMNS, values, strict=True)}
    return out

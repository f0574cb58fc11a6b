"""The streaming pipeline's logic, callable without Ray: batch processing, KPI rows, routing, tables."""

from mkt_ray.contract import factorize
from mkt_ray.pipeline._attribution import (
    ATTRIBUTION,
    SUMMARY,
    PartitionState,
    attribute_partition,
    nest_summary,
    summary_sql,
)
from mkt_ray.pipeline._batch import (
    BatchCounts,
    BatchOutput,
    offset_ranges,
    process_batch,
    quarantine_table,
    tenant_hint,
    tenant_key,
)
from mkt_ray.pipeline._checkpoint import drop_checkpoints_after, load_checkpoint, save_checkpoint
from mkt_ray.pipeline._enrich import DEFAULT_CHANNEL_ALIASES, EnrichResult, enrich
from mkt_ray.pipeline._kpi_rows import LEDGER_WINDOW, kpi_window_rows
from mkt_ray.pipeline._late import late_rows
from mkt_ray.pipeline._process import use_system_arrow_pool
from mkt_ray.pipeline._routing import SHARD_COLUMNS, shard_events, shard_for, shard_tables, tenant_partitions
from mkt_ray.pipeline._tables import KPI, LATE, QUARANTINE, ledger_sql, pipeline_ddl

__all__ = [
    "ATTRIBUTION",
    "DEFAULT_CHANNEL_ALIASES",
    "KPI",
    "LEDGER_WINDOW",
    "LATE",
    "PartitionState",
    "QUARANTINE",
    "SHARD_COLUMNS",
    "SUMMARY",
    "BatchCounts",
    "BatchOutput",
    "attribute_partition",
    "EnrichResult",
    "enrich",
    "factorize",
    "kpi_window_rows",
    "ledger_sql",
    "late_rows",
    "drop_checkpoints_after",
    "load_checkpoint",
    "nest_summary",
    "offset_ranges",
    "pipeline_ddl",
    "process_batch",
    "quarantine_table",
    "save_checkpoint",
    "shard_events",
    "shard_for",
    "shard_tables",
    "summary_sql",
    "tenant_hint",
    "tenant_key",
    "tenant_partitions",
    "use_system_arrow_pool",
]

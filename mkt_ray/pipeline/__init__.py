"""The streaming pipeline's logic, callable without Ray: batch processing, KPI rows, tables."""

from mkt_ray.pipeline._batch import BatchCounts, BatchOutput, offset_ranges, process_batch, tenant_hint
from mkt_ray.pipeline._kpi_rows import MINUTE_MS, factorize, kpi_minute_table
from mkt_ray.pipeline._tables import KPI_1M, QUARANTINE, pipeline_ddl

__all__ = [
    "KPI_1M",
    "MINUTE_MS",
    "QUARANTINE",
    "BatchCounts",
    "BatchOutput",
    "factorize",
    "kpi_minute_table",
    "offset_ranges",
    "pipeline_ddl",
    "process_batch",
    "tenant_hint",
]

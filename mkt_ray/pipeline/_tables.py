"""The warehouse tables the pipeline writes, as ClickHouse DDL (the same SQL runs on chDB)."""

from __future__ import annotations

import pyarrow as pa

from mkt_ray.pipeline._attribution import credit_ddl, credit_link_ddl, summary_ddl

KPI = "kpi_windows"
QUARANTINE = "quarantine"
SIGNALS = "signals"
ALERTS = "alerts"
HORIZONS = "window_horizons"
DELETION_AUDIT = "deletion_audit"
LATE = "late_events"
TOPICS = "topics"  # the topic the ledger was written from, by name and id

KPI_COUNTS = ("events", "impressions", "clicks", "conversions")
KPI_AMOUNTS = ("cost", "revenue")

# One row per (window kind, tenant, campaign, source, window start) per applied batch; queries sum them.
# The partition and offset range are the ledger: a member taking over a partition resumes after the
# highest applied offset. No PARTITION BY: one insert is one part, so a batch is applied all or nothing.
# Reads are time ranges of a tenant's windows (API pages, closing windows), so the window start comes
# before campaign and source, in small granules: an API page of one hour of 1-minute windows (5 campaigns,
# 216k rows) took 6.4 instead of 8.2 ms chDB CPU, the two layouts queried alternately (benchmarks/api.py data).
KPI_SCHEMA = pa.schema(
    [
        ("window", pa.string()),
        ("tenant_id", pa.string()),
        ("campaign_id", pa.string()),
        ("source", pa.string()),
        ("window_start_ms", pa.int64()),
        *[(name, pa.int64()) for name in KPI_COUNTS],
        *[(name, pa.float64()) for name in KPI_AMOUNTS],
        ("partition", pa.int32()),
        ("first_offset", pa.int64()),
        ("last_offset", pa.int64()),
        ("applied_ms", pa.int64()),
    ]
)

QUARANTINE_SCHEMA = pa.schema(
    [
        ("reason", pa.string()),
        ("tenant_id", pa.string()),
        ("raw", pa.binary()),
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("quarantined_ms", pa.int64()),
    ]
)


def pipeline_ddl(database: str) -> list[str]:
    """CREATE statements for the pipeline's tables (idempotent)."""
    settings = "SETTINGS non_replicated_deduplication_window = 10000"
    return [
        f"""CREATE TABLE IF NOT EXISTS {database}.{KPI} (
            window LowCardinality(String), tenant_id LowCardinality(String), campaign_id String,
            source LowCardinality(String), window_start_ms Int64, events Int64, impressions Int64,
            clicks Int64, conversions Int64, cost Float64, revenue Float64, partition Int32,
            first_offset Int64, last_offset Int64, applied_ms Int64
        ) ENGINE = MergeTree
        ORDER BY (tenant_id, window, window_start_ms, campaign_id, source, partition, first_offset)
        {settings}, index_granularity = 1024""",
        # one row per rejected message: (partition, offset) is its identity, so a replay replaces, never adds
        f"""CREATE TABLE IF NOT EXISTS {database}.{QUARANTINE} (
            reason LowCardinality(String), tenant_id String, raw String, partition Int32, offset Int64,
            quarantined_ms Int64
        ) ENGINE = ReplacingMergeTree ORDER BY (partition, offset) {settings}""",
        # closed windows (kind 'window') and ratio violations on them (kind 'quality'): one row per key
        f"""CREATE TABLE IF NOT EXISTS {database}.{SIGNALS} (
            kind LowCardinality(String), rule LowCardinality(String), tenant_id LowCardinality(String),
            window LowCardinality(String), campaign_id String, source LowCardinality(String),
            window_start_ms Int64, window_end_ms Int64, events Int64, impressions Int64, clicks Int64,
            conversions Int64, cost Float64, revenue Float64, ctr Float64, cvr Float64, cpa Float64,
            roas Float64, closed_ms Int64
        ) ENGINE = ReplacingMergeTree
        ORDER BY (tenant_id, window, campaign_id, source, window_start_ms, kind, rule)""",
        f"""CREATE TABLE IF NOT EXISTS {database}.{ALERTS} (
            rule LowCardinality(String), tenant_id LowCardinality(String), window LowCardinality(String),
            campaign_id String, source LowCardinality(String), window_start_ms Int64, window_end_ms Int64,
            value Float64, threshold Float64, impressions Int64, closed_ms Int64
        ) ENGINE = ReplacingMergeTree ORDER BY (tenant_id, window, campaign_id, source, window_start_ms, rule)""",
        # per tenant and window kind: every window ending at or before horizon_ms has been closed
        f"""CREATE TABLE IF NOT EXISTS {database}.{HORIZONS} (
            tenant_id LowCardinality(String), window LowCardinality(String), horizon_ms Int64
        ) ENGINE = ReplacingMergeTree(horizon_ms) ORDER BY (tenant_id, window)""",
        credit_ddl(database),
        credit_link_ddl(database),
        summary_ddl(database),
        # one row per right-to-be-forgotten request and state (the highest version is the current one);
        # the identity only as its tenant-salted SHA-256, so the audit does not remember whom it forgot
        f"""CREATE TABLE IF NOT EXISTS {database}.{DELETION_AUDIT} (
            request_id String, tenant_id LowCardinality(String), identity_sha256 String,
            status LowCardinality(String), requested_ms Int64, completed_ms Nullable(Int64), identities Int64,
            engine_identities Int64, attribution_rows Int64, quarantine_rows Int64, raw_rows Int64,
            raw_files Int64, error String, version UInt64
        ) ENGINE = ReplacingMergeTree(version) ORDER BY (tenant_id, request_id)""",
        # valid events applied after their 1-minute window closed (mkt_ray/pipeline/_late.py), per batch slice
        f"""CREATE TABLE IF NOT EXISTS {database}.{LATE} (
            tenant_id LowCardinality(String), partition Int32, first_offset Int64, window_start_ms Int64,
            late_events Int64, max_delay_ms Int64, applied_ms Int64
        ) ENGINE = ReplacingMergeTree ORDER BY (tenant_id, partition, first_offset, window_start_ms)""",
        # the events topic the ledger's offsets belong to, and its id: the newest row (check_topic_identity)
        f"""CREATE TABLE IF NOT EXISTS {database}.{TOPICS} (
            topic String, topic_id String, recorded_ms Int64
        ) ENGINE = ReplacingMergeTree(recorded_ms) ORDER BY (topic, topic_id)""",
    ]


def ledger_sql(database: str) -> str:
    """The highest offset applied per partition (the ledger: every KPI insert's rows carry their offset range)."""
    return f"SELECT partition, max(last_offset) FROM {database}.{KPI} GROUP BY partition"


def topic_id_sql(database: str) -> tuple[str, str]:
    """The query of the topic the ledger was written from and its id (the newest record), and the insert of one
    (parameters `topic`, `id`, `ms`)."""
    return (f"SELECT topic, topic_id FROM {database}.{TOPICS} ORDER BY recorded_ms DESC LIMIT 1",
            f"INSERT INTO {database}.{TOPICS} VALUES ({{topic:String}}, {{id:String}}, {{ms:Int64}})")

"""What an ingest member records per batch: metrics, late data and SLO alerts, in one object.

The ingest actor calls `taken` when a batch is consumed (consumer lag, watermarks before it),
`late_rows` before its commit (rows for the `late_events` table), and `applied` after the commit
(counters, latency histograms, attribution coverage, SLO check, which returns alert rows to publish).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from mkt_ray.contract import EVENT_TYPE_CODE
from mkt_ray.kafka import table_messages
from mkt_ray.observability._metrics import (
    CoverageTracker,
    observe_latencies,
    record_counts,
    record_lag,
    record_late,
    record_slo_alert,
)
from mkt_ray.observability._slo import SloMonitor
from mkt_ray.observability._tracing import configure_tracing
from mkt_ray.pipeline import BatchOutput, PartitionState, late_rows
from mkt_ray.settings import Settings

_CONVERSION = EVENT_TYPE_CODE["conversion"]


class BatchObserver:
    """Per-member observation state: attribution coverage, the SLO windows, watermarks before a batch."""

    def __init__(self, settings: Settings, member: int, clock: Callable[[], float] = time.time) -> None:
        self._tenants = settings.tenants
        self._pipeline = settings.kafka.consumer_group
        self._coverage = CoverageTracker(self._pipeline)
        if settings.observability.otlp_endpoint:
            configure_tracing(settings.observability.otlp_endpoint)
        self._slo = SloMonitor(settings.observability.slo, f"ingest-{member}", clock)
        self._watermarks: dict[int, int | None] = {}

    def taken(self, consumer: Any, topic: str, partitions: np.ndarray, offsets: np.ndarray,
              states: Mapping[int, PartitionState]) -> None:
        """A batch was consumed (its messages' partitions and offsets, in order): lag per partition = high
        watermark - first offset taken (not yet committed)."""
        import confluent_kafka as ck

        self._watermarks = {p: s.decoder.watermark_ms for p, s in states.items()}
        present, at = np.unique(partitions, return_index=True)
        lags = {}
        for partition, offset in zip(present.tolist(), offsets[at].tolist(), strict=True):
            _, high = consumer.get_watermark_offsets(ck.TopicPartition(topic, partition), cached=True)
            if high >= 0:
                lags[partition] = max(0, high - offset)
        record_lag(self._pipeline, lags)

    def late_rows(self, out: BatchOutput, applied_ms: int) -> pa.Table:
        """Rows for the late_events table (events whose minute window had closed before this batch)."""
        rows = late_rows(out.events, self._watermarks, self._tenants, out.ranges, applied_ms)
        if rows.num_rows:
            tenants = rows["tenant_id"].to_pylist()
            counts = rows["late_events"].to_pylist()
            late: dict[str, int] = {}
            for tenant, n in zip(tenants, counts, strict=True):
                late[tenant] = late.get(tenant, 0) + n
            record_late(self._pipeline, late)
        return rows

    def applied(self, out: BatchOutput, applied_ms: int) -> pa.Table:
        """Record a committed batch; returns the SLO alert rows due (to the alerts table and topic)."""
        c = out.counts
        record_counts(self._pipeline, c.valid, c.quarantined, c.duplicate, c.reasons)
        kpi_ms = applied_ms - out.created_ms
        conversions = out.events["event_type"] == _CONVERSION if len(out.events) else np.zeros(0, bool)
        attribution_ms = kpi_ms[conversions] if out.credit_rows is not None else np.zeros(0, np.int64)
        observe_latencies(self._pipeline, "kpi_latency", kpi_ms)
        observe_latencies(self._pipeline, "attribution_latency", attribution_ms)
        self._coverage.add(out.credit_rows)
        alerts = self._slo.observe(kpi_ms, attribution_ms)
        for rule in alerts["rule"].to_pylist():
            record_slo_alert(self._pipeline, rule)
        return alerts


def alert_messages(alerts: pa.Table) -> list[tuple[bytes, bytes]]:
    """(key, value) Kafka messages for SLO alert rows: key = rule/source/period, value = the row as JSON."""
    return table_messages(alerts, ("rule", "source", "window_start_ms"))

"""Observability: Ray metrics in Prometheus format, OpenTelemetry spans, SLO alerts.

The query API records its latency with `api_latency(route)` (a context manager) or
`record_api_latency(route, seconds, status)`; the Grafana dashboard over these metrics is
`grafana_dashboard.json` beside this file.
"""

from mkt_ray.observability._batch import BatchObserver, alert_messages
from mkt_ray.observability._metrics import (
    CoverageTracker,
    Reservoir,
    api_latency,
    merged_percentiles,
    metrics_export_url,
    observe_latencies,
    record_api_latency,
    record_counts,
    record_lag,
    record_late,
    record_slo_alert,
)
from mkt_ray.observability._slo import RULES as SLO_RULES
from mkt_ray.observability._slo import SloMonitor
from mkt_ray.observability._tracing import configure_tracing, span

__all__ = [
    "SLO_RULES",
    "BatchObserver",
    "CoverageTracker",
    "Reservoir",
    "SloMonitor",
    "alert_messages",
    "api_latency",
    "configure_tracing",
    "merged_percentiles",
    "metrics_export_url",
    "observe_latencies",
    "record_api_latency",
    "record_counts",
    "record_lag",
    "record_late",
    "record_slo_alert",
    "span",
]

"""Ray metrics of the pipeline and the API, exported by every Ray node in Prometheus text format.

Ray's metrics agent serves what any worker records at `http://<node>:<metrics export port>/metrics`
(`ray.init(_metrics_export_port=...)`, or `ray start --metrics-export-port`; `metrics_export_url()` finds
it); names get Ray's `ray_` prefix and counters a `_total` suffix. Metrics are created lazily in the
process that records them, so importing this module costs nothing and needs no running Ray.

Recording a histogram observation costs ~1.6 us (measured with Ray 2.60 here), as much as decoding
three events, so per-event latencies are observed as a stride sample of at most `LATENCY_SAMPLE` per
batch: the histogram's shape is right, its `_count` is the sample size; event counts come from the
counters, which are exact.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

LATENCY_SAMPLE = 512
LATENCY_BUCKETS_MS = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000]
API_BUCKETS_MS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000]


@cache
def _metrics() -> dict:
    from ray.util.metrics import Counter, Gauge, Histogram

    return {
        "events": Counter("mkt_events", "Messages read by ingest, by outcome (valid, quarantined, duplicate).",
                          tag_keys=("pipeline", "outcome")),
        "quarantined": Counter("mkt_quarantined", "Messages quarantined, by reason code.",
                               tag_keys=("pipeline", "reason")),
        "late": Counter("mkt_late_events", "Valid events applied after their 1-minute window had closed.",
                        tag_keys=("pipeline", "tenant")),
        "kpi_latency": Histogram("mkt_event_to_kpi_latency_ms", "Kafka timestamp to KPI rows committed (ms, sampled).",
                                 boundaries=LATENCY_BUCKETS_MS, tag_keys=("pipeline",)),
        "attribution_latency": Histogram("mkt_attribution_latency_ms",
                                         "Conversion's Kafka timestamp to its credits written (ms, sampled).",
                                         boundaries=LATENCY_BUCKETS_MS, tag_keys=("pipeline",)),
        "lag": Gauge("mkt_consumer_lag", "Messages not yet committed when the partition's last batch was taken.",
                     tag_keys=("pipeline", "partition")),
        "conversions": Counter("mkt_conversions", "Conversions attributed, by whether a touchpoint got credit.",
                               tag_keys=("pipeline", "tenant", "credited")),
        "coverage": Gauge("mkt_attribution_coverage", "Share of conversions credited to at least one touchpoint.",
                          tag_keys=("pipeline", "tenant")),
        "api_latency": Histogram("mkt_api_latency_ms", "Query API request latency (ms).", boundaries=API_BUCKETS_MS,
                                 tag_keys=("route", "status")),
        "slo_alerts": Counter("mkt_slo_alerts", "SLO alerts raised, by rule.", tag_keys=("pipeline", "rule")),
    }


class Reservoir:
    """A uniform random sample of at most `size` of all the values added so far (reservoir sampling,
    Algorithm R, a batch at a time): every value added has the same chance `size / seen` to be in it.

    Each value past the first `size` draws a slot in [0, its 1-based position); one under `size` replaces
    that slot, and of several values drawing the same slot the last one stays, as one at a time would."""

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size, self.seen = int(size), 0
        self.values = np.zeros(0, np.int64)
        self._rng = np.random.default_rng(seed)

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, np.int64)
        room = min(max(self.size - len(self.values), 0), len(values))
        self.values = np.concatenate([self.values, values[:room]])
        rest = values[room:]
        positions = np.arange(self.seen + room + 1, self.seen + len(values) + 1)  # 1-based, of `rest`
        self.seen += len(values)
        if not len(rest):
            return
        slots = self._rng.integers(0, positions)
        taken = np.flatnonzero(slots < self.size)
        _, last = np.unique(slots[taken][::-1], return_index=True)  # the last value of each drawn slot
        chosen = taken[::-1][last]
        self.values[slots[chosen]] = rest[chosen]


def merged_percentiles(samples: list[tuple[np.ndarray, int]], quantiles: tuple[int, ...], prefix: str) -> dict[str, float]:
    """Percentiles over several reservoirs' samples, given as (values, how many values each stands for):
    each value weighs seen / sample size, so a busier member counts for what it saw. A percentile is a
    sampled value: the least one whose weighted share at or below it reaches q% (numpy's `inverted_cdf`).
    No values: {}."""
    samples = [(np.asarray(values), seen) for values, seen in samples if len(values) and seen > 0]
    if not samples:
        return {}
    values = np.concatenate([v for v, _ in samples])
    weights = np.concatenate([np.full(len(v), seen / len(v)) for v, seen in samples])
    order = np.argsort(values, kind="stable")
    share = np.cumsum(weights[order])
    share /= share[-1]
    picks = np.minimum(np.searchsorted(share, np.asarray(quantiles) / 100), len(values) - 1)
    return {f"{prefix}{q}": float(values[order[i]]) for q, i in zip(quantiles, picks.tolist(), strict=True)}


def _sample(values: np.ndarray) -> np.ndarray:
    step = max(1, -(-len(values) // LATENCY_SAMPLE))
    return values[::step]


def observe_latencies(pipeline: str, name: str, values_ms: np.ndarray) -> None:
    """Record a batch's latencies (ms) in histogram `kpi_latency` or `attribution_latency` (sampled).

    `pipeline` (the consumer group) tags every pipeline metric, so pipelines sharing a cluster stay apart.
    """
    histogram = _metrics()[name]
    tags = {"pipeline": pipeline}
    for value in _sample(np.asarray(values_ms)).tolist():
        histogram.observe(float(value), tags=tags)


def record_counts(pipeline: str, valid: int, quarantined: int, duplicate: int, reasons: Mapping[str, int]) -> None:
    """A batch's outcome counts (events/s is the rate of `ray_mkt_events_total`)."""
    metrics = _metrics()
    for outcome, n in (("valid", valid), ("quarantined", quarantined), ("duplicate", duplicate)):
        if n:
            metrics["events"].inc(n, tags={"pipeline": pipeline, "outcome": outcome})
    for reason, n in reasons.items():
        if n:
            metrics["quarantined"].inc(n, tags={"pipeline": pipeline, "reason": reason})


def record_lag(pipeline: str, lags: Mapping[int, int]) -> None:
    for partition, lag in lags.items():
        _metrics()["lag"].set(lag, tags={"pipeline": pipeline, "partition": str(partition)})


def record_late(pipeline: str, late_by_tenant: Mapping[str, int]) -> None:
    for tenant, n in late_by_tenant.items():
        _metrics()["late"].inc(n, tags={"pipeline": pipeline, "tenant": tenant})


def record_slo_alert(pipeline: str, rule: str) -> None:
    _metrics()["slo_alerts"].inc(1, tags={"pipeline": pipeline, "rule": rule})


class CoverageTracker:
    """Attribution coverage per tenant: conversions whose last-touch credit went to a touchpoint.

    Every credited conversion has exactly one `last_touch` row, whose `touch_ts_ms` is null when no
    touchpoint was in its lookback ((direct)); counting those rows counts conversions once.
    """

    def __init__(self, pipeline: str) -> None:
        self.pipeline = pipeline
        self.seen: dict[str, list[int]] = {}  # tenant -> [conversions, with a touchpoint]

    def add(self, credit_rows: pa.Table | None) -> None:
        if credit_rows is None or credit_rows.num_rows == 0:
            return
        rows = credit_rows.filter(pc.equal(credit_rows["model"], "last_touch"))
        per_tenant = pa.table({"tenant": rows["tenant_id"], "touched": pc.is_valid(rows["touch_ts_ms"])}).group_by(
            "tenant", use_threads=False).aggregate([("touched", "sum"), ("touched", "count")])  # in C, not per row
        metrics = _metrics()
        for tenant, with_touch, total in zip(*(per_tenant[name].to_pylist() for name in
                                               ("tenant", "touched_sum", "touched_count")), strict=True):
            direct = total - with_touch
            counts = self.seen.setdefault(tenant, [0, 0])
            counts[0] += total
            counts[1] += with_touch
            for credited, n in (("touchpoint", with_touch), ("direct", direct)):
                if n:
                    metrics["conversions"].inc(n, tags={"pipeline": self.pipeline, "tenant": tenant, "credited": credited})
            metrics["coverage"].set(counts[1] / counts[0], tags={"pipeline": self.pipeline, "tenant": tenant})


def record_api_latency(route: str, seconds: float, status: int = 200) -> None:
    """One API request's latency; `route` is the route template (`/v1/kpis`), never the raw path."""
    _metrics()["api_latency"].observe(seconds * 1000.0, tags={"route": route, "status": str(status)})


@contextmanager
def api_latency(route: str) -> Iterator[None]:
    """Time the block as one request to `route` (status 500 if it raises)."""
    started = time.perf_counter()
    status = 500
    try:
        yield
        status = 200
    finally:
        record_api_latency(route, time.perf_counter() - started, status)


def metrics_export_url(node_ip: str | None = None) -> str:
    """The Prometheus endpoint of a node of the connected Ray cluster (this node by default)."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    ip = node_ip or ray.util.get_node_ip_address()
    node = next((n for n in nodes if n["NodeManagerAddress"] == ip), nodes[0])
    return f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"

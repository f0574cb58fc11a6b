"""Observability pieces without a platform: SLO judgement on a fake clock, late-data rows against a
plain-Python reference, the latency reservoir against one-at-a-time Algorithm R, and the Grafana
dashboard querying only metrics the code exports."""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from mkt_ray.contract import EventColumns
from mkt_ray.observability import Reservoir, SloMonitor, merged_percentiles
from mkt_ray.observability._metrics import _metrics
from mkt_ray.pipeline import late_rows
from mkt_ray.settings import SloSettings, TenantConfig

MINUTE = 60_000


def test_slo_alerts_once_per_period_and_only_above_the_objective() -> None:
    now = [1000.0]
    monitor = SloMonitor(SloSettings(event_to_kpi_p99_s=5.0, attribution_p99_s=30.0, window_s=60), "ingest-0",
                         clock=lambda: now[0])
    assert monitor.observe(np.full(100, 4000), np.full(10, 20_000)).num_rows == 0  # under both objectives
    rows = monitor.observe(np.full(100, 7000), np.zeros(0)).to_pylist()  # p99 of the last 60 s: 7000 > 5000
    assert [(r["rule"], r["value"], r["threshold"], r["source"]) for r in rows] == [
        ("slo_event_to_kpi_p99", 7000.0, 5000.0, "ingest-0")]
    assert rows[0]["window_start_ms"] == 960_000 and rows[0]["window_end_ms"] == 1_020_000
    now[0] += 10
    assert monitor.observe(np.full(100, 9000), np.full(10, 40_000)).column("rule").to_pylist() == [
        "slo_attribution_p99"]  # kpi already alerted in this period
    now[0] += 120  # the old latencies left the window; only fast ones remain
    assert monitor.observe(np.full(10, 100), np.full(10, 100)).num_rows == 0


def _events(ts: list[int], tenants: list[str]) -> EventColumns:
    n = len(ts)
    return EventColumns({"ts_ms": np.array(ts, np.int64), "tenant_id": np.array(tenants, object),
                         "partition": np.zeros(n, np.int32), "offset": np.arange(n, dtype=np.int64)})


@pytest.mark.parametrize("lateness_s", [(0, 150), (None, None)])  # None: the default, every tenant the same
def test_late_rows_match_a_plain_reference(lateness_s: tuple) -> None:
    rng = np.random.default_rng(3)
    watermark, base = 100 * MINUTE, 90 * MINUTE
    ts = (base + rng.integers(0, 12 * MINUTE, 400)).tolist()
    tenants = rng.choice(["a", "b"], 400).tolist()
    config = {name: TenantConfig() if s is None else TenantConfig(allowed_lateness_s=s)
              for name, s in zip("ab", lateness_s, strict=True)}
    rows = late_rows(_events(ts, tenants), {0: watermark}, config, {0: (7, 406)}, 5).to_pylist()
    expected: dict[tuple, list[int]] = {}
    for t, tenant in zip(ts, tenants, strict=True):
        end = t // MINUTE * MINUTE + MINUTE
        delay = watermark - config[tenant].allowed_lateness_s * 1000 - end
        if delay >= 0:
            slot = expected.setdefault((tenant, end - MINUTE), [0, 0])
            slot[0], slot[1] = slot[0] + 1, max(slot[1], delay)
    got = {(r["tenant_id"], r["window_start_ms"]): [r["late_events"], r["max_delay_ms"]] for r in rows}
    assert got == expected and len(got) > 4
    assert {(r["partition"], r["first_offset"], r["applied_ms"]) for r in rows} == {(0, 7, 5)}
    assert late_rows(_events(ts, tenants), {0: None}, config, {0: (7, 406)}, 5).num_rows == 0  # no watermark yet


def test_dashboard_queries_only_exported_metrics(ray_session) -> None:
    path = Path(__file__).parents[2] / "mkt_ray" / "observability" / "grafana_dashboard.json"
    dashboard = json.loads(path.read_text())
    used = {re.sub(r"_(bucket|total)$", "", name) for panel in dashboard["panels"] for target in panel["targets"]
            for name in re.findall(r"ray_(mkt_\w+)", target["expr"])}
    exported = {metric.info["name"] for metric in _metrics().values()}
    assert used == exported


@pytest.mark.parametrize("batches", [[3, 2], [5, 40, 1, 300], [1000]])
def test_reservoir_equals_algorithm_r_one_value_at_a_time(batches: list[int]) -> None:
    size, seed = 8, 3
    reservoir = Reservoir(size, seed=seed)
    draws = np.random.default_rng(seed)  # the same draws, applied one value at a time
    expected: list[int] = []
    seen = 0
    for n in batches:
        values = np.arange(seen, seen + n) * 10
        reservoir.add(values)
        room = min(max(size - len(expected), 0), n)
        expected += values[:room].tolist()
        positions = np.arange(seen + room + 1, seen + n + 1)
        slots = draws.integers(0, positions) if len(positions) else []
        for value, slot in zip(values[room:].tolist(), list(slots), strict=True):
            if slot < size:
                expected[slot] = value
        seen += n
    assert reservoir.values.tolist() == expected and reservoir.seen == seen == sum(batches)


def test_reservoir_keeps_every_position_equally_often() -> None:
    size, n, runs = 10, 100, 4000
    hits = np.zeros(n)
    for seed in range(runs):
        reservoir = Reservoir(size, seed=seed)
        for start in range(0, n, 30):  # batches of 30: the first straddles the fill-up
            reservoir.add(np.arange(start, min(start + 30, n)))
        hits[reservoir.values] += 1
    assert hits.sum() == size * runs
    # each position is in the sample with probability size / n = 0.1: 400 of 4000 runs, sd 19
    assert np.abs(hits - runs * size / n).max() < 5 * np.sqrt(runs * 0.1 * 0.9)


def test_merged_percentiles_weigh_each_sample_by_what_it_stands_for() -> None:
    # 1 and 2 stand for one value each, 10 for eight: the weighted median is 10, unweighted it would be 2
    assert merged_percentiles([(np.array([1, 2]), 2), (np.array([10]), 8)], (50,), "p") == {"p50": 10.0}
    assert merged_percentiles([(np.array([1, 2]), 2), (np.array([10]), 8)], (5, 15, 25), "p") == {
        "p5": 1.0, "p15": 2.0, "p25": 10.0}
    assert merged_percentiles([(np.zeros(0), 0), (np.array([3]), 0)], (50,), "p") == {}


@pytest.mark.parametrize("seed", range(20))
def test_merged_percentiles_equal_an_exact_weighted_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(int(rng.integers(1, 4))):
        values = rng.integers(0, 40, int(rng.integers(1, 20)))
        samples.append((values, len(values) * int(2 ** rng.integers(0, 5))))  # weights 1, 2, 4, 8, 16: exact
    quantiles = (0, 1, 10, 25, 50, 75, 90, 99, 100)
    pairs = sorted((int(v), Fraction(seen, len(values))) for values, seen in samples for v in values.tolist())
    total = sum(w for _, w in pairs)
    expected = {}
    for q in quantiles:  # the least value whose weighted share at or below it reaches q%
        running = Fraction(0)
        for value, weight in pairs:
            running += weight
            if running / total >= Fraction(q, 100):
                expected[f"p{q}"] = float(value)
                break
    assert merged_percentiles(samples, quantiles, "p") == expected

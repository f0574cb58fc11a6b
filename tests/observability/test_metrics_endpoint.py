"""Metrics scraped over HTTP from Ray's Prometheus endpoint after a pipeline run equal the run's own
accounting; an SLO set below the achievable latency raises exactly one alert (table and topic)."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

from actors.launcher import Platform
from mkt_ray.kafka import consume_all, produce_lines, topic_end_offsets
from mkt_ray.observability import api_latency
from mkt_ray.pipeline import tenant_key
from mkt_ray.settings import ObservabilitySettings, PipelineSettings, SloSettings, load_settings
from mkt_ray.workload import generate_workload
from tests.observability._scrape import scrape

pytestmark = pytest.mark.platform
TENANTS = ["acme", "globex", "initech"]


def _ours(samples: dict, name: str, group: str) -> list[tuple[dict, float]]:
    return [(labels, value) for labels, value in samples.get(name, []) if labels.get("pipeline") == group]


@pytest.fixture(scope="module")
def run(broker, ray_session, tmp_path_factory) -> dict:
    folder: Path = tmp_path_factory.mktemp("metrics")
    tag = folder.name.replace("_", "-")
    from mkt_ray.settings import KafkaSettings

    # event-to-KPI objective below any real latency: must fire, once; attribution's out of reach: must not
    slo = SloSettings(event_to_kpi_p99_s=0.001, attribution_p99_s=1e6, window_s=10_000_000)
    settings = load_settings(
        data_dir=folder / "data",
        kafka=KafkaSettings(bootstrap_servers=broker.bootstrap, topic_events=f"ev-{tag}", topic_quarantine=f"q-{tag}",
                            topic_signals=f"s-{tag}", topic_alerts=f"a-{tag}", consumer_group=f"g-{tag}", partitions=2),
        pipeline=PipelineSettings(ingest_actors=1, batch_size=1000),
        observability=ObservabilitySettings(slo=slo),
    ).with_tenants(TENANTS)
    workload = generate_workload(5000, TENANTS, 17, datetime.now(UTC), invalid_share=0.06)
    lines = list(workload)
    with Platform(settings) as platform:
        platform.wait_until_assigned()
        produce_lines(platform.kafka_conf, settings.kafka.topic_events, lines, tenant_key)
        platform.wait_until_applied(topic_end_offsets(platform.kafka_conf, settings.kafka.topic_events), 180)
        db = settings.warehouse.database
        coverage = dict(platform.query(
            f"SELECT tenant_id, countIf(touch_ts_ms IS NOT NULL) / count() FROM {db}.attribution_credits FINAL "
            "WHERE model = 'last_touch' GROUP BY tenant_id"))
        alerts = platform.query(f"SELECT rule, source, threshold FROM {db}.alerts FINAL WHERE window = 'slo'")
        alert_count = sum(topic_end_offsets(platform.kafka_conf, settings.kafka.topic_alerts).values())
        alert_messages = consume_all(platform.kafka_conf, settings.kafka.topic_alerts, alert_count, timeout=60)
    with api_latency("/v1/kpis"):
        time.sleep(0.003)
    group = settings.kafka.consumer_group
    deadline = time.monotonic() + 120  # Ray's agent exports what workers recorded every few seconds
    names = ("ray_mkt_events_total", "ray_mkt_quarantined_total", "ray_mkt_event_to_kpi_latency_ms_count",
             "ray_mkt_attribution_latency_ms_count", "ray_mkt_consumer_lag", "ray_mkt_attribution_coverage",
             "ray_mkt_slo_alerts_total")
    while True:
        samples = scrape()
        events = sum(v for _, v in _ours(samples, "ray_mkt_events_total", group))
        api = [v for labels, v in samples.get("ray_mkt_api_latency_ms_count", []) if labels.get("route") == "/v1/kpis"]
        if (all(_ours(samples, n, group) for n in names) and api and events == len(lines)) or time.monotonic() > deadline:
            break
        time.sleep(1)
    return {"samples": samples, "group": group, "truth": workload.truth, "coverage": coverage, "alerts": alerts,
            "alert_messages": alert_messages, "alert_count": alert_count}


def test_events_by_outcome_and_quarantine_by_reason_equal_the_run(run: dict) -> None:
    truth, group = run["truth"], run["group"]
    outcomes = defaultdict(float)
    for labels, value in _ours(run["samples"], "ray_mkt_events_total", group):
        outcomes[labels["outcome"]] += value
    assert dict(outcomes) == {"valid": truth["valid"], "quarantined": truth["quarantined"],
                              "duplicate": truth["duplicates"]}
    reasons = defaultdict(float)
    for labels, value in _ours(run["samples"], "ray_mkt_quarantined_total", group):
        reasons[labels["reason"]] += value
    assert dict(reasons) == {code: n for code, n in truth["reasons"].items() if n}


def test_latency_histograms_lag_and_coverage_are_exported(run: dict) -> None:
    samples, group = run["samples"], run["group"]
    assert sum(v for _, v in _ours(samples, "ray_mkt_event_to_kpi_latency_ms_count", group)) > 0
    assert sum(v for _, v in _ours(samples, "ray_mkt_attribution_latency_ms_count", group)) > 0
    lag = {labels["partition"]: value for labels, value in _ours(samples, "ray_mkt_consumer_lag", group)}
    assert set(lag) == {"0", "1"} and all(v > 0 for v in lag.values())  # as each partition's last batch was taken
    coverage = {labels["tenant"]: value for labels, value in _ours(samples, "ray_mkt_attribution_coverage", group)}
    assert coverage == pytest.approx(run["coverage"], rel=1e-9)
    assert all(0 < v <= 1 for v in coverage.values())


def test_api_latency_helper_is_exported(run: dict) -> None:
    counts = [v for labels, v in run["samples"]["ray_mkt_api_latency_ms_count"]
              if labels.get("route") == "/v1/kpis" and labels.get("status") == "200"]
    assert counts and sum(counts) >= 1


def test_slo_breach_raises_one_alert_in_table_topic_and_metric(run: dict) -> None:
    assert [(rule, threshold) for rule, _, threshold in run["alerts"]] == [("slo_event_to_kpi_p99", 1.0)]
    keys = [key.decode() for _, _, key, _ in run["alert_messages"]]
    assert run["alert_count"] == 1 and len(keys) == 1 and keys[0].startswith("slo_event_to_kpi_p99/ingest-0/")
    slo = {labels["rule"]: v for labels, v in _ours(run["samples"], "ray_mkt_slo_alerts_total", run["group"])}
    assert slo == {"slo_event_to_kpi_p99": 1.0}

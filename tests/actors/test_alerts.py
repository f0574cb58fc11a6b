"""Closed windows through the real pipeline: alerts fire exactly for breaching windows, once each;
ratio violations on a window's totals become data-quality signals; the signals topic carries every
signal row once, keyed by window and rule."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from actors.launcher import Platform
from mkt_ray.kafka import consume_all, produce_lines, topic_end_offsets
from mkt_ray.pipeline._closing import SIGNAL_SCHEMA
from mkt_ray.settings import PipelineSettings, load_settings

pytestmark = pytest.mark.platform
MINUTE = 60_000
_SIGNAL_KEY = ("tenant_id", "window", "campaign_id", "source", "window_start_ms", "rule")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _event(i: int, ts_ms: int, event_type: str = "ad_metrics", **metrics) -> bytes:
    event = {"schema_version": 1, "event_id": f"e{i}", "tenant_id": "acme", "event_type": event_type,
             "timestamp": _iso(ts_ms), "source": "meta", "campaign_id": "c1", "performance_metrics": metrics}
    if event_type == "touchpoint":
        event["anonymous_id"] = f"a{i}"
    return json.dumps(event).encode()


@pytest.fixture
def platform(broker, kafka_settings, ray_session, tmp_path: Path):
    thresholds = {"window": "tumbling_1m", "min_impressions": 10, "ctr_below": 0.05, "spend_above": 50.0}
    settings = load_settings(
        data_dir=tmp_path / "data",
        kafka=kafka_settings(bootstrap_servers=broker.bootstrap, consumer_group=f"g-{tmp_path.name}", partitions=1),
        pipeline=PipelineSettings(ingest_actors=1, shards=2),
        tenants={"acme": {"allowed_lateness_s": 0, "thresholds": thresholds}},
    )
    with Platform(settings) as running:
        running.wait_until_assigned()
        yield running


def _send(platform: Platform, lines: list[bytes]) -> None:
    topic = platform.settings.kafka.topic_events
    produce_lines(platform.kafka_conf, topic, lines, lambda _: b"acme")
    platform.wait_until_applied(topic_end_offsets(platform.kafka_conf, topic), 60)


def _topic_once_settled(platform: Platform, topic: str, rows: int, timeout_s: float = 30.0) -> list:
    """Every message of `topic`, read once the topic holds at least `rows` (a shard sends a table's rows
    right after inserting them): as many as its end offsets say, so nothing waits for a timeout."""
    deadline = time.monotonic() + timeout_s
    while sum(topic_end_offsets(platform.kafka_conf, topic).values()) < rows and time.monotonic() < deadline:
        time.sleep(0.2)
    return consume_all(platform.kafka_conf, topic, None, timeout=30)


def test_alerts_fire_once_for_exactly_the_breaching_windows(platform: Platform) -> None:
    base = (int(time.time() * 1000) // MINUTE - 30) * MINUTE
    m = [base + k * MINUTE for k in range(12)]
    _send(platform, [
        _event(0, m[0] + 5, impressions=100, clicks=10, cost=10.0),   # ctr 0.10, spend 10: fine
        _event(1, m[1] + 5, impressions=100, clicks=2, cost=10.0),    # ctr 0.02: ctr_below
        _event(2, m[2] + 5, impressions=5, clicks=0, cost=60.0),      # too thin for ratios; spend 60: spend_above
        _event(3, m[3] + 5, impressions=120, clicks=3, cost=30.0),    # ctr 0.025 ...
        _event(4, m[3] + 9, impressions=80, clicks=2, cost=50.0),     # ... window total 200/5, spend 80: both
        _event(5, m[5] + 5, impressions=100, clicks=50, cost=5.0),    # fine
        _event(6, m[6] + 5, "touchpoint", clicks=1),                  # window clicks > impressions: quality
        _event(7, m[6] + 7, "touchpoint", clicks=1),
    ])
    _send(platform, [_event(8, m[11] + 1, impressions=100, clicks=10)])  # watermark moves: m0..m10 close
    _send(platform, [_event(9, m[1] + 30, impressions=1000, clicks=1)])  # late for a closed window: no new alert

    db = platform.settings.warehouse.database
    # threshold alerts only: a latency-SLO alert (window 'slo') may also fire on a loaded machine
    alerts = platform.query(
        f"SELECT window_start_ms, rule, value FROM {db}.alerts WHERE window != 'slo' ORDER BY window_start_ms, rule")
    assert [(start, rule) for start, rule, _ in alerts] == [
        (m[1], "ctr_below"), (m[2], "spend_above"), (m[3], "ctr_below"), (m[3], "spend_above")]
    assert [value for *_, value in alerts] == [0.02, 60.0, 0.025, 80.0]

    signals = platform.query(
        f"SELECT window, window_start_ms, impressions, clicks FROM {db}.signals WHERE kind = 'window' "
        f"AND window = 'tumbling_1m' ORDER BY window_start_ms")
    assert [(s, i, c) for _, s, i, c in signals] == [
        (m[0], 100, 10), (m[1], 100, 2), (m[2], 5, 0), (m[3], 200, 5), (m[5], 100, 50), (m[6], 0, 2)]
    quality = platform.query(f"SELECT window, window_start_ms, rule FROM {db}.signals WHERE kind = 'quality' ORDER BY window, window_start_ms")
    assert (("tumbling_1m", m[6], "clicks_exceed_impressions") in quality)

    # the late event still counts in the stored window
    (total,), = platform.query(
        f"SELECT sum(impressions) FROM {db}.kpi_windows WHERE window = 'tumbling_1m' AND window_start_ms = {m[1]}")
    assert total == 1100

    (alert_rows,), = platform.query(f"SELECT count() FROM {db}.alerts FINAL")
    messages = _topic_once_settled(platform, platform.settings.kafka.topic_alerts, alert_rows)
    threshold = [json.loads(v) for *_, v in messages if json.loads(v)["window"] != "slo"]
    assert sorted(a["rule"] + str(a["window_start_ms"]) for a in threshold) == sorted(
        ["ctr_below" + str(m[1]), "spend_above" + str(m[2]), "ctr_below" + str(m[3]), "spend_above" + str(m[3])])

    # every signal in the table is on the topic once, keyed by window and rule, the row as JSON (NaN: null)
    names = SIGNAL_SCHEMA.names
    table = platform.query(f"SELECT {', '.join(names)} FROM {db}.signals FINAL")
    expected = sorted(("/".join(str(row[names.index(n)]) for n in _SIGNAL_KEY),
                       {n: None if isinstance(v, float) and math.isnan(v) else v for n, v in zip(names, row, strict=True)})
                      for row in table)
    on_topic = _topic_once_settled(platform, platform.settings.kafka.topic_signals, len(table))
    assert len(table) >= 16  # three window kinds over the closed minutes, and a quality signal
    assert sorted((key.decode(), json.loads(value)) for *_, key, value in on_topic) == expected

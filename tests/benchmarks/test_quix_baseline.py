"""The Quix Streams baseline of benchmarks/pipeline.py against a plain-Python reference, on the real broker."""

from __future__ import annotations

import calendar
import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import pytest

from mkt_ray.embedded import EmbeddedBroker
from mkt_ray.kafka import produce_lines
from mkt_ray.workload import generate_workload

pytest.importorskip(
    "quixstreams", reason="the Quix baseline needs the bench extra: pip install -e '.[bench]'"
)

from benchmarks._quix import run_quix_baseline  # noqa: E402

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
TENANTS = ["acme", "globex", "initech", "umbrella"]
INTS = (0, 1, 2)  # impressions, clicks, conversions; cost and revenue are floats


def reference_windows(lines: Iterable[bytes]) -> dict[tuple[str, str, int], list[Any]]:
    """Per (tenant, campaign or "", 1-minute event-time window start ms) sums of the five measures."""
    windows: dict[tuple[str, str, int], list[Any]] = {}
    for line in lines:
        event = json.loads(line)
        stamp = datetime.fromisoformat(event["timestamp"]).astimezone(UTC)
        ms = calendar.timegm(stamp.timetuple()) * 1000 + stamp.microsecond // 1000
        key = (event["tenant_id"], event.get("campaign_id") or "", ms - ms % 60_000)
        metrics = event.get("performance_metrics") or {}
        conversions = metrics.get("conversions")
        if conversions is None:
            conversions = 1 if event["event_type"] == "conversion" else 0
        row = [metrics.get("impressions") or 0, metrics.get("clicks") or 0, conversions]
        row += [metrics.get("cost") or 0.0, metrics.get("revenue") or 0.0]
        total = windows.setdefault(key, [0, 0, 0, 0.0, 0.0])
        for i, value in enumerate(row):
            total[i] += value
    return windows


def test_quix_window_sums_equal_the_reference(
    broker: EmbeddedBroker, kafka_conf: dict[str, Any], new_topic: Callable[..., str]
) -> None:
    lines = list(generate_workload(5000, TENANTS, 11, NOW, invalid_share=0.0, duplicate_share=0.0))
    topic = new_topic(partitions=4, prefix="quix-baseline")
    produce_lines(kafka_conf, topic, lines, key_fn=lambda line: json.loads(line)["tenant_id"].encode())

    result = run_quix_baseline(broker.bootstrap, topic, expected_messages=len(lines), timeout_s=50)

    assert result["events"] == 5000
    assert result["wall_s"] > 0 and result["cpu_s"] > 0 and result["events_per_s"] > 0
    expected = reference_windows(lines)
    assert result["windows"].keys() == expected.keys()
    for key, want in expected.items():
        got = result["windows"][key]
        assert [got[i] for i in INTS] == [want[i] for i in INTS], key
        assert got[3:] == pytest.approx(want[3:], rel=1e-9), key

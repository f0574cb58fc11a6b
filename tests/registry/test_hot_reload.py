"""Through the real broker, Ray and pipeline: after `mkt-ray models promote`, the shards credit markov and
data_driven with the promoted channel values within 30 s, without a restart."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest
import ray

from actors.launcher import Platform
from mkt_ray.cli import main as cli_main
from mkt_ray.kafka import produce_lines, topic_end_offsets
from mkt_ray.pipeline import tenant_key
from mkt_ray.registry import ModelRegistry
from mkt_ray.settings import PipelineSettings, RegistrySettings, load_settings
from mkt_ray.workload import generate_workload

pytestmark = pytest.mark.platform
VALUES = {
    "data_driven": {"google_ads": 5.0, "meta": 2.0, "email": 1.0, "tiktok": 0.5, "linkedin": 3.0,
                    "organic_search": 1.5, "display": 0.25},
    "markov": {"google_ads": 0.1, "meta": 0.4, "email": 0.2, "tiktok": 0.3, "linkedin": 0.05,
               "organic_search": 0.6, "display": 0.7},
}


def _expected_weights(channels: list[str], values: dict[str, float]) -> list[float]:
    """The contract's online rule in plain Python: channel values normalised over the path's channels,
    shared equally among each channel's touchpoints."""
    distinct = set(channels)
    total = sum(values[ch] for ch in distinct)
    return [values[ch] / total / channels.count(ch) for ch in channels]


def _wait_for_version(platform: Platform, version: str, timeout_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if all(s["models"].get("acme") == version for s in ray.get([a.stats.remote() for a in platform.ingest])):
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"model {version} not picked up within {timeout_s} s")


def test_promoted_values_credit_new_conversions_without_restart(broker, kafka_settings, ray_session,
                                                                tmp_path: Path) -> None:
    models = tmp_path / "models"
    settings = load_settings(
        data_dir=tmp_path / "data",
        kafka=kafka_settings(bootstrap_servers=broker.bootstrap, consumer_group=f"g-{tmp_path.name}", partitions=1),
        pipeline=PipelineSettings(ingest_actors=1, shards=1, batch_size=2000),
        registry=RegistrySettings(uri=str(models), poll_s=1.0),
    ).with_tenants(["acme"])
    version = ModelRegistry(str(models)).publish("acme", "model", {"channel_values": VALUES})
    lines = list(generate_workload(8000, ["acme"], 21, datetime.now(UTC), invalid_share=0.0))
    topic = settings.kafka.topic_events
    with Platform(settings) as platform:
        platform.wait_until_assigned()
        produce_lines(platform.kafka_conf, topic, lines[:4000], tenant_key)
        before = topic_end_offsets(platform.kafka_conf, topic)
        platform.wait_until_applied(before, 120)
        config = tmp_path / "mkt.yaml"
        config.write_text(f"registry: {{uri: {models}}}\n")
        assert cli_main(["--config", str(config), "models", "promote", "acme", version]) == 0
        picked_up_s = _wait_for_version(platform, version, 30.0)
        produce_lines(platform.kafka_conf, topic, lines[4000:], tenant_key)
        platform.wait_until_applied(topic_end_offsets(platform.kafka_conf, topic), 120)
        rows = platform.query(
            f"SELECT offset, model, touch_index, channel, weight, fallback FROM {settings.warehouse.database}."
            "attribution_credits FINAL WHERE model IN ('markov', 'data_driven') ORDER BY offset, model, touch_index")
    print(f"promoted model picked up after {picked_up_s:.1f} s")
    first_end = before[0]
    paths: dict[tuple[int, str], list] = defaultdict(list)
    for offset, model, _, channel, weight, fallback in rows:
        paths[(offset, model)].append((channel, weight, fallback))
    old = [p for (offset, _), p in paths.items() if offset < first_end]
    new = {key: p for key, p in paths.items() if key[0] >= first_end}
    assert len(old) > 50 and len(new) > 100
    assert all(fallback for p in old for ch, _, fallback in p if ch != "(direct)")  # linear before the promote
    for (_, model), path in new.items():
        channels = [ch for ch, _, _ in path]
        if channels == ["(direct)"]:
            assert [w for _, w, _ in path] == [1.0]
            continue
        assert not any(fallback for _, _, fallback in path)
        assert [w for _, w, _ in path] == pytest.approx(_expected_weights(channels, VALUES[model]), rel=1e-9)

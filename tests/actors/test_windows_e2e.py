"""Through the real broker and pipeline: every window row in the warehouse, of every kind, equals a
plain-Python aggregation of the valid events (late events included)."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

from actors.launcher import Platform
from mkt_ray.kafka import produce_lines, topic_end_offsets
from mkt_ray.pipeline import tenant_key
from mkt_ray.settings import PipelineSettings, load_settings
from mkt_ray.workload import generate_workload

pytestmark = pytest.mark.platform
TENANTS = ["acme", "globex"]
KINDS = {"tumbling_1m": (60_000, 60_000), "tumbling_1h": (3_600_000, 3_600_000), "sliding_5m": (300_000, 60_000)}
METRICS = ("impressions", "clicks", "conversions", "cost", "revenue")


def _epoch_ms(text: str) -> int:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(moment.timestamp()) * 1000 + moment.microsecond // 1000


def _reference(valid_lines: list[bytes]) -> dict[tuple, list]:
    """Per (kind, tenant, campaign, source, start): events and the five metrics, summed in plain Python."""
    sums: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0, 0.0, 0.0])
    for line in valid_lines:
        e = json.loads(line)
        m = e.get("performance_metrics") or {}
        values = [1, m.get("impressions") or 0, m.get("clicks") or 0,
                  m.get("conversions") if m.get("conversions") is not None else int(e["event_type"] == "conversion"),
                  m.get("cost") or 0.0, m.get("revenue") or 0.0]
        ts = _epoch_ms(e["timestamp"])
        for kind, (size, step) in KINDS.items():
            for start in range(ts // step * step - size + step, ts // step * step + 1, step):
                row = sums[(kind, e["tenant_id"], e.get("campaign_id") or "", e.get("source") or "", start)]
                for j, v in enumerate(values):
                    row[j] += v
    return sums


def test_window_rows_of_every_kind_equal_the_reference(broker, kafka_settings, ray_session, tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path / "data",
        kafka=kafka_settings(bootstrap_servers=broker.bootstrap, consumer_group=f"g-{tmp_path.name}", partitions=2),
        pipeline=PipelineSettings(ingest_actors=2, shards=3, batch_size=3000, piece_rows=700),  # several pieces
    ).with_tenants(TENANTS)
    workload = generate_workload(15_000, TENANTS, 8, datetime.now(UTC))
    lines, valid = [], []
    for batch, outcomes in workload.labelled_batches():
        lines += batch
        valid += [line for line, outcome in zip(batch, outcomes, strict=True) if outcome == "valid"]
    expected = _reference(valid)
    with Platform(settings) as platform:
        platform.wait_until_assigned()
        produce_lines(platform.kafka_conf, settings.kafka.topic_events, lines, tenant_key)
        platform.wait_until_applied(topic_end_offsets(platform.kafka_conf, settings.kafka.topic_events), 120)
        rows = platform.query(
            f"SELECT window, tenant_id, campaign_id, source, window_start_ms, sum(events), "
            f"{', '.join(f'sum({m})' for m in METRICS)} FROM {settings.warehouse.database}.kpi_windows "
            "WHERE window != 'ledger' GROUP BY window, tenant_id, campaign_id, source, window_start_ms")
    got = {tuple(r[:5]): list(r[5:]) for r in rows}
    assert set(got) == set(expected)
    stamps = [_epoch_ms(json.loads(line)["timestamp"]) for line in valid]
    late, highest = 0, stamps[0]
    for ts in stamps:
        late += ts < highest - 60_000
        highest = max(highest, ts)
    assert late > 50  # the stream really holds events more than a minute late, and they are all counted
    for key, want in expected.items():
        have = got[key]
        assert have[:4] == want[:4], key
        for j in (4, 5):
            assert math.isclose(have[j], want[j], rel_tol=1e-9, abs_tol=1e-9), (key, j)

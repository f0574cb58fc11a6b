"""benchmarks/pipeline.py end to end on a tiny workload: mkt-ray and Quix agree on every window sum."""

from __future__ import annotations

import json

import pytest

from mkt_ray.embedded import EmbeddedBroker

pytest.importorskip(
    "quixstreams", reason="the Quix baseline needs the bench extra: pip install -e '.[bench]'"
)

from benchmarks.pipeline import main  # noqa: E402


@pytest.mark.platform
def test_pipeline_benchmark_sums_match(
    broker: EmbeddedBroker, ray_session: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--events", "3000", "--tenants", "2", "--bootstrap", broker.bootstrap]) == 0

    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["benchmark"] == "pipeline" and report["events"] == 3000
    assert report["sums_match"] is True
    assert report["truth_match"] is True
    assert report["windows"] > 0
    for side in ("mkt_ray", "quix"):
        assert report[side]["events_per_s"] > 0 and report[side]["cpu_s"] > 0
    threads = report["mkt_ray"]["member_thread_cpu_s"]  # the member thread decoded every event
    assert threads["member: consume, decode, enrich, attribute, Arrow tables"] > 0 and "writer: to shards and store, commit" in threads

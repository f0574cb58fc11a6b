"""`mkt-ray generate` then `mkt-ray demo --json`, as a user runs them: real broker, Ray, chDB, in a subprocess."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

pytestmark = pytest.mark.platform

TENANTS = "acme,globex,initech"


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkt_ray", *args], capture_output=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    folder = tmp_path_factory.mktemp("demo")
    events = folder / "events.jsonl"
    gen = _cli("generate", "--events", "20000", "--tenants", TENANTS, "--seed", "11", "--out", str(events),
               "--invalid-share", "0.05")
    assert gen.returncode == 0, gen.stderr.decode()
    demo = _cli("demo", "--input", str(events), "--tenants", TENANTS, "--json", "--raw-dir", str(folder / "raw"))
    assert demo.returncode == 0, demo.stderr.decode()[-3000:]
    lines = demo.stdout.decode().strip().splitlines()
    assert len(lines) == 1, "stdout must be exactly one JSON line"
    truth = json.loads((folder / "events.truth.json").read_text())
    return json.loads(lines[0]), truth


def test_every_message_is_accounted_for(demo_run: tuple[dict, dict]) -> None:
    report, truth = demo_run
    assert report["events_read"] == 20000
    assert report["events_read"] == report["events_valid"] + report["events_quarantined"] + report["events_duplicate"]
    assert (report["events_valid"], report["events_duplicate"]) == (truth["valid"], truth["duplicates"])


def test_counts_per_reason_code_equal_the_generated_ones(demo_run: tuple[dict, dict]) -> None:
    report, truth = demo_run
    assert report["quarantine_reasons"] == {code: n for code, n in truth["reasons"].items() if n}
    assert len(report["quarantine_reasons"]) == 19  # every reason code of the contract occurred


def test_kpi_totals_from_the_warehouse_equal_sums_over_valid_events(demo_run: tuple[dict, dict]) -> None:
    report, truth = demo_run
    assert set(report["kpis"]) == set(truth["kpis"])
    for tenant, expected in truth["kpis"].items():
        got = report["kpis"][tenant]
        for name in ("impressions", "clicks", "conversions"):
            assert got[name] == expected[name], (tenant, name)
        for name in ("cost", "revenue"):
            assert math.isclose(got[name], expected[name], rel_tol=1e-9), (tenant, name)


def test_report_has_throughput_and_event_to_warehouse_latency(demo_run: tuple[dict, dict]) -> None:
    report, _ = demo_run
    assert report["events_per_s"] > 0 and report["wall_s"] > 0
    latency = report["latency_ms"]
    assert 0 < latency["kpi_p50"] <= latency["kpi_p99"]


def test_report_has_attribution_for_every_tenant_and_model(demo_run: tuple[dict, dict]) -> None:
    report, truth = demo_run
    models = {"first_touch", "last_touch", "linear", "position_based", "time_decay", "markov", "data_driven"}
    assert set(report["attribution"]) == set(truth["kpis"])
    for tenant, by_model in report["attribution"].items():
        assert set(by_model) == models, tenant
        totals = {m: sum(c["conversions"] for c in channels.values()) for m, channels in by_model.items()}
        first = totals["first_touch"]
        assert first > 0 and all(math.isclose(v, first, rel_tol=1e-9) for v in totals.values()), (tenant, totals)
    latency = report["latency_ms"]
    assert 0 < latency["attribution_p50"] <= latency["attribution_p99"]

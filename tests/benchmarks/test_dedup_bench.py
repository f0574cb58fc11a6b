"""benchmarks/dedup.py on a small stream: one JSON line, and both indexes mark the same events."""

from __future__ import annotations

import json

import pytest

from benchmarks.dedup import main


@pytest.mark.parametrize("window_s", [86_400, 2])
def test_dedup_benchmark_agrees_with_its_baseline(window_s: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--ids", "20000", "--batch", "3000", "--tenants", "3", "--window-s", str(window_s)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    report = json.loads(lines[-1])
    assert len(lines) == 1 and report["benchmark"] == "dedup" and report["flags_match"] is True
    assert 0 < report["duplicates"] < 20_000 * 0.01  # 1% repeats, some of them outside a 2 s window
    in_window = report["ids_in_window"]
    assert in_window == 20_000 - report["duplicates"] if window_s == 86_400 else 0 < in_window <= 3 * 2_000
    for side in ("mkt_ray", "dict"):
        assert report[side]["ns_per_event"] > 0 and report[side]["bytes_per_id"] > 0

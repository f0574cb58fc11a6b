"""The replay, quality-report and remediation jobs refuse bad input with one line on stderr and exit 2:
no traceback, and nothing made on disk by a refused run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mkt_ray.warehouse import ChdbWarehouse
from training import quality_report, remediate, replay

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("job", "argv", "said"), [
    (replay, ["--tenant", "acme", "--since", "2026-11-31"], "error: --since '2026-11-31' is not a date; use YYYY-MM-DD"),
    (replay, ["--tenant", "acme", "--since", "2026-11-20", "--until", "11/26/2026"], "error: --until '11/26/2026' is not a date"),
    (quality_report, ["--date", "2026-13-01"], "error: --date '2026-13-01' is not a date"),
])
def test_a_date_that_is_not_one_is_refused(job, argv: list[str], said: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    if job is replay:
        argv = ["--input", str(tmp_path), *argv]
    assert job.main(argv) == 2
    captured = capsys.readouterr()
    assert said in captured.err and "Traceback" not in captured.err and captured.out == ""


def test_replay_of_a_store_that_is_not_there_is_refused_and_makes_no_folder(tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "raw-typo"
    assert replay.main(["--input", str(missing), "--tenant", "acme", "--since", "2026-11-20"]) == 2
    assert f"error: raw store {missing} does not exist or is not a folder" in capsys.readouterr().err
    assert not missing.exists()


def test_remediation_without_a_broker_to_reinject_into_is_refused(monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("MKT_KAFKA__BOOTSTRAP_SERVERS", raising=False)
    assert remediate.main(["--tenant", "acme", "--reason", "future_timestamp"]) == 2
    assert "error: kafka.bootstrap_servers is not set" in capsys.readouterr().err


def test_a_job_run_while_the_platform_holds_the_embedded_warehouse_says_so(tmp_path: Path) -> None:
    """The README's rule (run the jobs while the platform is stopped), broken: the job is told, not crashed."""
    held = ChdbWarehouse(tmp_path / "warehouse", "mkt")  # as the running platform's store actor holds it
    try:
        env = {**os.environ, "MKT_DATA_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
        done = subprocess.run([sys.executable, "-m", "training.quality_report", "--date", "2026-11-26"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    finally:
        held.close()
    assert done.returncode == 2, done.stderr
    assert "is locked by another process" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""

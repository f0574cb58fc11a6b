"""`ray job submit`'s path: the job submitted with Ray's JobSubmissionClient to a local Ray head, unchanged.

This test starts its own head (free ports, a private temp dir) because job submission goes through the
head's dashboard, which the session Ray does not run; the head is started and stopped as the cluster
test does it (tests/cluster/_local.py: token auth stated, venv on PATH, processes found by
the temp dir, never `ray stop`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mkt_ray.embedded import free_port
from mkt_ray.registry import ModelRegistry
from tests.cluster._local import CLUSTER_ENV, RAY, port_args, stop_cluster
from training.sample_store import archive_workload

pytestmark = pytest.mark.platform
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def ray_head() -> Iterator[str]:
    """A local Ray head (2 CPUs) with its dashboard; yields the dashboard URL."""
    temp_dir = tempfile.mkdtemp(prefix="mkt-train-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    gcs_port, dashboard_port = free_port(), free_port()
    try:
        started = subprocess.run([RAY, "start", "--head", f"--port={gcs_port}", f"--temp-dir={temp_dir}", "--num-cpus=2",
                        "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}",
                        *port_args("ray-client-server-port", "node-manager-port", "object-manager-port",
                                "metrics-export-port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                                "runtime-env-agent-port"),
                        "--node-ip-address=127.0.0.1", "--disable-usage-stats"],
                       check=False, capture_output=True, text=True, timeout=120, env=CLUSTER_ENV)
        assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
        yield f"http://127.0.0.1:{dashboard_port}"
    finally:
        stop_cluster(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _client(url: str):
    """The submission client, with the head's token (Ray reads RAY_AUTH_MODE once per process, and this
    process already imported Ray with its own mode, so the token goes as the documented bearer header)."""
    from ray.job_submission import JobSubmissionClient

    token_file = Path.home() / ".ray" / "auth_token"
    headers = {"Authorization": f"Bearer {token_file.read_text().strip()}"} if token_file.exists() else None
    return JobSubmissionClient(url, headers=headers)


def test_job_submitted_to_a_local_head_succeeds(ray_head: str, tmp_path: Path) -> None:
    from ray.job_submission import JobStatus

    raw, models = tmp_path / "raw", tmp_path / "models"
    archive_workload(str(raw), 30_000, ["acme"], 4, datetime.now(UTC))
    client = _client(ray_head)
    job = client.submit_job(
        entrypoint=f"python -m training.train_attribution --input {raw} --tenant acme --output {models} "
                   "--num-workers 1 --num-boost-round 5",
        runtime_env={"working_dir": str(REPO), "excludes": [".venv", ".git", "tests", "benchmarks"]},
    )
    deadline = time.monotonic() + 300
    while (status := client.get_job_status(job)) not in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}:
        assert time.monotonic() < deadline, f"job {job} still {status}"
        time.sleep(1.0)
    logs = client.get_job_logs(job)
    assert status == JobStatus.SUCCEEDED, logs[-3000:]
    result = json.loads([line for line in logs.splitlines() if line.startswith("{")][-1])
    assert ModelRegistry(str(models)).versions("acme") == [result["model_version"]]
    assert result["journeys"] > 1000 and set(result["credits"]) >= set(result["channel_values"])

"""The README's cluster commands on a two-node Ray cluster on loopback: the pipeline's driver job, and the
training job as a data scientist submits it.

`ray up` only adds SSH and the setup commands around `ray start`; the module's cluster is what its start
commands start (a head, then a worker joining it) with free ports and a private temp dir. Both jobs go
through the head's dashboard, as `ray job submit` does: the pipeline with the README's command, unchanged;
training with Ray's JobSubmissionClient (what `ray job submit` calls). Like the README's one-machine
recipe, neither ships a working dir: the nodes run this checkout's venv, so Numba loads the kernels from
its cache (a working dir is a new path in every job, and Numba compiles each kernel again there). Every
process of the cluster is stopped afterwards (found by the private temp dir: `ray stop` would also stop
other Ray clusters on this machine).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
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
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def local_cluster() -> Iterator[str]:
    """A head (1 CPU, dashboard) and a worker node (2 CPUs) on 127.0.0.1; yields the dashboard address."""
    temp_dir = tempfile.mkdtemp(prefix="mkt-ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    node_ports = ("node-manager-port", "object-manager-port", "metrics-export-port", "dashboard-agent-listen-port",
                  "dashboard-agent-grpc-port", "runtime-env-agent-port")
    gcs_port, dashboard_port = free_port(), free_port()
    common = ["--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    try:
        for args in (["--head", f"--port={gcs_port}", f"--temp-dir={temp_dir}", "--num-cpus=1", "--include-dashboard=true",
                      "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}",
                      *port_args("ray-client-server-port", *node_ports)],
                     # a temp dir of its own: each node's runtime-env agent deletes a job's working dir
                     # from its temp dir once its own last worker of the job ends
                     [f"--address=127.0.0.1:{gcs_port}", f"--temp-dir={temp_dir}/worker", "--num-cpus=2",
                      *port_args(*node_ports)]):
            started = subprocess.run([RAY, "start", *args, *common], capture_output=True, text=True, timeout=120,
                                     env=CLUSTER_ENV)
            assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
        yield f"http://127.0.0.1:{dashboard_port}"
    finally:
        stop_cluster(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_readme_pipeline_job_runs_on_a_two_node_cluster(local_cluster, tmp_path):
    events = tmp_path / "events.jsonl"
    subprocess.run([sys.executable, "-m", "mkt_ray", "generate", "--events", "3000", "--tenants", "acme,globex",
                    "--seed", "5", "--out", str(events)], check=True, capture_output=True, timeout=120)
    truth = json.loads(events.with_suffix(".truth.json").read_text())
    # as in README "Running on a cluster": the driver job connects to the cluster it runs on
    job = subprocess.run(
        [RAY, "job", "submit", "--address", local_cluster, "--runtime-env-json", json.dumps({"env_vars": {"MKT_RAY_ADDRESS": "auto"}}), "--",
         "python", "-m", "mkt_ray", "demo", "--input", str(events), "--tenants", "acme,globex", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=CLUSTER_ENV)
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    report = json.loads(next(line for line in job.stdout.splitlines() if line.startswith('{"events_read"')))
    assert report["events_read"] == 3000
    assert report["events_valid"] == truth["valid"]
    assert {t: {k: v for k, v in kpi.items() if k in ("impressions", "clicks", "conversions")}
            for t, kpi in report["kpis"].items()} == {
        t: {k: truth["kpis"][t][k] for k in ("impressions", "clicks", "conversions")} for t in ("acme", "globex")}
    nodes = subprocess.run([RAY, "list", "nodes", "--address", local_cluster, "--format", "json"],
                           capture_output=True, text=True, timeout=60, check=True, env=CLUSTER_ENV)
    alive = [node for node in json.loads(nodes.stdout) if node["state"] == "ALIVE"]
    assert len(alive) == 2


def _client(url: str):
    """The submission client, with the head's token (Ray reads RAY_AUTH_MODE once per process, and this
    process already imported Ray with its own mode, so the token goes as the documented bearer header)."""
    from ray.job_submission import JobSubmissionClient

    token_file = Path.home() / ".ray" / "auth_token"
    headers = {"Authorization": f"Bearer {token_file.read_text().strip()}"} if token_file.exists() else None
    return JobSubmissionClient(url, headers=headers)


def test_training_job_submitted_to_the_cluster_succeeds(local_cluster: str, tmp_path: Path) -> None:
    from ray.job_submission import JobStatus

    raw, models = tmp_path / "raw", tmp_path / "models"
    archive_workload(str(raw), 30_000, ["acme"], 4, datetime.now(UTC))
    client = _client(local_cluster)
    job = client.submit_job(
        entrypoint=f"python -m training.train_attribution --input {raw} --tenant acme --output {models} "
                   "--num-workers 1 --num-boost-round 5",
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

"""The README's "Running on a cluster" commands, on a two-node Ray cluster on loopback.

`ray up` only adds SSH and the setup commands around `ray start`; this starts what its start commands
start (a head, then a worker joining it) with free ports and a private temp dir, and then runs the
README's `ray job submit` of the pipeline against the head's dashboard address, unchanged. Every
process of the cluster is stopped afterwards (found by the private temp dir in its command line:
`ray stop` would also stop other Ray clusters on this machine).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mkt_ray.embedded import free_port
from tests.cluster._local import CLUSTER_ENV, RAY, port_args, stop_cluster

pytestmark = pytest.mark.platform
ROOT = Path(__file__).resolve().parents[2]
@pytest.fixture
def local_cluster() -> Iterator[str]:
    """A head (1 CPU, dashboard) and a worker node (2 CPUs) on 127.0.0.1; yields the dashboard address."""
    temp_dir = tempfile.mkdtemp(prefix="mkt-ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    node_ports = ("node-manager-port", "object-manager-port", "metrics-export-port", "dashboard-agent-listen-port",
                  "dashboard-agent-grpc-port", "runtime-env-agent-port")
    gcs_port, dashboard_port = free_port(), free_port()
    common = ["--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    env = CLUSTER_ENV
    try:
        subprocess.run([RAY, "start", "--head", f"--port={gcs_port}", f"--temp-dir={temp_dir}", "--num-cpus=1",
                        "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}",
                        *port_args("ray-client-server-port", *node_ports), *common],
                       check=True, capture_output=True, text=True, timeout=120, env=env)
        subprocess.run([RAY, "start", f"--address=127.0.0.1:{gcs_port}", "--num-cpus=2", *port_args(*node_ports),
                        *common], check=True, capture_output=True, text=True, timeout=120, env=env)
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
        [RAY, "job", "submit", "--address", local_cluster, "--working-dir", ".",
         "--runtime-env-json", json.dumps({"env_vars": {"MKT_RAY_ADDRESS": "auto"}}), "--",
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

"""Local Ray clusters started by tests with `ray start` (free ports, a private temp dir), and their teardown.

`ray stop` would also stop other Ray clusters on this machine, so a cluster's processes are found by its
private temp dir instead.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from mkt_ray.embedded import free_port

RAY = str(Path(sys.executable).with_name("ray"))
# The nodes start with the venv on PATH, as cluster.yaml's start commands do (`source .../activate`), so the
# job's `python` is the venv's. Ray 2.60 turns token authentication on for a head when ~/.ray/auth_token
# exists; the mode is then stated for every node and client (they read the same token file).
CLUSTER_ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
               "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}


def port_args(*names: str) -> list[str]:
    return [arg for name in names for arg in (f"--{name}", str(free_port()))]


def cluster_pids(temp_dir: str) -> list[int]:
    """Processes of the cluster: their command line or an open file (every Ray process logs there) is in temp_dir.

    Agents rename their command line (`ray::DashboardAgent`), so the open files are what finds them.
    """
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            mine = temp_dir.encode() in (entry / "cmdline").read_bytes() or any(
                os.readlink(fd).startswith(temp_dir) for fd in (entry / "fd").iterdir())
        except OSError:
            continue
        if mine:
            pids.append(int(entry.name))
    return pids


def stop_cluster(temp_dir: str) -> None:
    for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
        for pid in cluster_pids(temp_dir):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait_s
        while cluster_pids(temp_dir) and time.monotonic() < deadline:
            time.sleep(0.2)

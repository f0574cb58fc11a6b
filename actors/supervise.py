"""Supervision for the long-running platform (`mkt-ray up`): restarting ingest members whose loop stopped on
an error, and noticing that Ray's own processes on this machine ended.

A member's loop stops on any error it cannot handle in place (a warehouse that refused an insert, a broken
dependency) and reports it through `stats()`. Restarted, it joins the group again and goes on from the
warehouse's ledger and its checkpoints, which is how every restart works (the fault tests kill members at
any point), so a passing fault costs a replay, not the platform. One that keeps failing is not hidden: past
`limit` restarts of one member within `window_s`, the platform stops with the last error.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import ray

from mkt_ray.embedded import descendants, process_name, still_running
from mkt_ray.errors import MktRayError

_RAY_NODE_PROCESSES = ("raylet", "gcs_server")  # without them no actor of this node runs, nor comes back


class MemberRestarts:
    """Restarts failed ingest members (see the module doc); `check` is called between status lines."""

    def __init__(self, limit: int = 5, window_s: float = 600.0, clock: Callable[[], float] = time.monotonic,
                 ready_timeout_s: float = 120.0) -> None:
        self.limit, self.window_s, self.clock, self.ready_timeout_s = limit, window_s, clock, ready_timeout_s
        self._restarted: dict[int, list[float]] = {}  # member -> times of its recent restarts

    def check(self, members: list[Any]) -> list[str]:
        """Restart each member whose loop stopped on an error; what was done, one line a member. MktRayError
        when a member failed more than `limit` times within `window_s`."""
        done = []
        for member in members:
            try:
                stats = ray.get(member.stats.remote(), timeout=30)
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                continue  # restarting already (a call in flight when it died fails so too), or busy: asked again
            if not stats["error"]:
                continue
            index, now = stats["member"], self.clock()
            recent = [t for t in self._restarted.get(index, []) if now - t < self.window_s] + [now]
            if len(recent) > self.limit:
                raise MktRayError(f"ingest member {index} failed {len(recent)} times within {self.window_s / 60:g} min; "
                                  f"the last time: {stats['error']}")
            self._restarted[index] = recent
            ray.kill(member, no_restart=False)  # Ray starts it again under the same handle
            self._wait_ready(member)
            done.append(f"ingest member {index} stopped on {stats['error']}; restarted it ({len(recent)} of "
                        f"{self.limit} restarts allowed in {self.window_s / 60:g} min), going on from the last "
                        "applied offsets (the status line's counts start again; the warehouse totals go on)")
        return done

    def _wait_ready(self, member: Any) -> None:
        """Until the restarted member answers; a call that meets the restart itself fails as unavailable
        ("the actor was restarted") and is made again."""
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            try:
                ray.get(member.__ray_ready__.remote(), timeout=max(1.0, deadline - time.monotonic()))
                return
            except ray.exceptions.ActorUnavailableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


def short_error(exc: BaseException) -> str:
    """The error's type and what it says on one line: Ray's errors run to a dozen lines (actor ids, addresses),
    and their first and last say what happened."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: " + " ... ".join(dict.fromkeys([lines[0], lines[-1]])) if lines else type(exc).__name__


class RayNodeWatch:
    """The Ray node this process started (`ray.init` without an address): its raylet and GCS server, by pid
    and start time. When one of them ends (killed, out of memory), every actor is gone for good and each call
    only says that an actor died; `ended()` says what ended and where Ray's logs are."""

    def __init__(self, logs: str) -> None:
        self.logs = logs
        named = {pid: (process_name(pid), started) for pid, started in descendants(os.getpid()).items()}
        self.watched = {pid: entry for pid, entry in named.items() if entry[0] in _RAY_NODE_PROCESSES}

    @classmethod
    def of_local_ray(cls) -> RayNodeWatch:
        node = getattr(ray._private.worker, "_global_node", None)  # no public API names the session's folder
        logs = node.get_logs_dir_path() if node is not None else "/tmp/ray/session_latest/logs"
        return cls(logs)

    def ended(self) -> str | None:
        """What of Ray's node ended, as a sentence; None while it runs."""
        gone = [f"{name} (pid {pid})" for pid, (name, started) in self.watched.items() if not still_running(pid, started)]
        if not gone:
            return None
        return (f"Ray's node on this machine stopped: {' and '.join(gone)} ended (killed, or out of memory; "
                f"Ray's logs: {self.logs}), and with it every actor")

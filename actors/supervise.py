"""Restarting ingest members whose loop stopped on an error, for the long-running platform (`mkt-ray up`).

A member's loop stops on any error it cannot handle in place (a warehouse that refused an insert, a broken
dependency) and reports it through `stats()`. Restarted, it joins the group again and goes on from the
warehouse's ledger and its checkpoints, which is how every restart works (the fault tests kill members at
any point), so a passing fault costs a replay, not the platform. One that keeps failing is not hidden: past
`limit` restarts of one member within `window_s`, the platform stops with the last error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import ray

from mkt_ray.errors import MktRayError


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
            except (ray.exceptions.ActorUnavailableError, ray.exceptions.GetTimeoutError):
                continue  # restarting already, or busy: asked again at the next check
            if not stats["error"]:
                continue
            index, now = stats["member"], self.clock()
            recent = [t for t in self._restarted.get(index, []) if now - t < self.window_s] + [now]
            if len(recent) > self.limit:
                raise MktRayError(f"ingest member {index} failed {len(recent)} times within {self.window_s / 60:g} min; "
                                  f"the last time: {stats['error']}")
            self._restarted[index] = recent
            ray.kill(member, no_restart=False)  # Ray starts it again under the same handle
            ray.get(member.__ray_ready__.remote(), timeout=self.ready_timeout_s)
            done.append(f"ingest member {index} stopped on {stats['error']}; restarted it ({len(recent)} of "
                        f"{self.limit} restarts allowed in {self.window_s / 60:g} min), going on from the last "
                        "applied offsets (the status line's counts start again; the warehouse totals go on)")
        return done

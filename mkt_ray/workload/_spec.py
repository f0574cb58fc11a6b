"""The arguments that define a workload, checked once."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mkt_ray.contract._schema import TENANT_ID_PATTERN
from mkt_ray.errors import InputError


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    """Everything the lines depend on: the same spec always gives the same bytes."""

    n_events: int
    tenants: tuple[str, ...]
    seed: int
    now: datetime
    invalid_share: float = 0.03
    duplicate_share: float = 0.01
    span_hours: float = 6.0

    def __post_init__(self) -> None:
        if self.n_events < 0 or self.seed < 0:
            raise InputError(f"n_events and seed must be >= 0, got {self.n_events} and {self.seed}")
        if not self.tenants or len(set(self.tenants)) != len(self.tenants):
            raise InputError(f"tenants must be a non-empty list of distinct ids, got {list(self.tenants)}")
        bad = [t for t in self.tenants if not isinstance(t, str) or re.fullmatch(TENANT_ID_PATTERN, t) is None]
        if bad:
            raise InputError(f"tenant ids {bad} do not match {TENANT_ID_PATTERN}")
        if self.now.tzinfo is None:
            raise InputError("now must be an aware datetime (e.g. datetime.now(UTC))")
        shares = (self.invalid_share, self.duplicate_share)
        if not all(0.0 <= s < 1.0 for s in shares) or sum(shares) >= 0.5:
            raise InputError(f"invalid_share and duplicate_share must be in [0, 1) and sum below 0.5, got {shares}")
        if not (math.isfinite(self.span_hours) and 0 < self.span_hours <= 24 * 80):
            raise InputError(f"span_hours must be in (0, 1920] (inside the 90-day retention), got {self.span_hours}")

    @property
    def now_ms(self) -> int:
        return round(self.now.timestamp() * 1_000_000) // 1000

    def params(self) -> dict[str, Any]:
        return {"n_events": self.n_events, "invalid_share": self.invalid_share,
                "duplicate_share": self.duplicate_share, "span_hours": self.span_hours}

"""The ground truth of a workload, counted while its lines are generated."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mkt_ray.contract import REASON_CODES, Reason
from mkt_ray.workload._model import CHANNELS, CausalShares


class TruthCounter:
    """Counts lines by outcome and sums KPIs of valid, first-seen events per tenant.

    Money is summed in integer cents (every generated amount has two decimals), so the totals are
    exact whatever the order of the events; readers summing floats agree to rounding.
    """

    def __init__(self, tenants: list[str]) -> None:
        self.tenants = list(tenants)
        self.events = 0
        self.valid = 0
        self.duplicates = 0
        self.reasons = dict.fromkeys(REASON_CODES, 0)
        self.kpis = {t: [0, 0, 0, 0, 0] for t in tenants}  # impressions, clicks, conversions, cost¢, revenue¢
        self.shares = CausalShares(self.tenants)

    def add_valid(self, tenant: str, metrics: tuple[int, int, int, int, int] | None) -> None:
        self.events += 1
        self.valid += 1
        if metrics is not None:
            sums = self.kpis[tenant]
            for i, value in enumerate(metrics):
                sums[i] += value

    def add_duplicate(self) -> None:
        self.events += 1
        self.duplicates += 1

    def add_rejected(self, reason: Reason) -> None:
        self.events += 1
        self.reasons[reason.code] += 1

    def to_dict(self, seed: int, now: datetime, params: dict[str, Any]) -> dict[str, Any]:
        """The ground truth as a JSON-ready dict (the `.truth.json` file)."""
        effects = self.shares.removal_effects()
        return {
            "seed": seed,
            "now": now.isoformat().replace("+00:00", "Z"),
            "now_ms": _epoch_ms(now),
            "params": params,
            "events": self.events,
            "valid": self.valid,
            "duplicates": self.duplicates,
            "quarantined": sum(self.reasons.values()),
            "reasons": dict(self.reasons),
            "tenants": list(self.tenants),
            "kpis": {t: _kpi_dict(sums) for t, sums in self.kpis.items()},
            "channels": {
                c.name: {"lift": c.lift, "click_rate": c.click_rate, "cpc": c.cpc, "removal_effect": effects[c.name]}
                for c in CHANNELS
            },
            "channel_shares": self.shares.shares(),
            "journeys": {
                t: {"completed": self.shares.journeys[t], "expected_conversions": self.shares.expected[t]}
                for t in self.tenants
            },
        }


def _kpi_dict(sums: list[int]) -> dict[str, int | float]:
    impressions, clicks, conversions, cost, revenue = sums
    return {
        "impressions": impressions,
        "clicks": clicks,
        "conversions": conversions,
        "cost": cost / 100,
        "revenue": revenue / 100,
    }


def _epoch_ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1_000_000) // 1000

"""Which reason the next invalid message gets, and how an `outlier` message is made.

Reasons follow a shuffled cycle in which every code appears 4 times (`oversized` once: each is a
64 KiB line), so any 73 consecutive invalid messages cover every code. An `outlier` needs a key
(tenant, campaign, event type, amount) with at least 60 accepted values earlier in the stream; until
one exists, the outliers due are owed and paid back as soon as one does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mkt_ray.contract import Reason
from mkt_ray.workload._events import Event, ad_metrics, conversion, touchpoint
from mkt_ray.workload._model import Campaign, TenantModel
from mkt_ray.workload._random import DrawStream

MIN_ACCEPTED = 60
OUTLIER_FACTOR = 10_000.0  # ~9.2 in log space, more than twice the rule's floor of 4 log1p units
OutlierKey = tuple[str, str, str, str]  # tenant, campaign ("" if none), event type, "cost" | "revenue"


@dataclass(slots=True)
class OutlierTargets:
    """Counts accepted amounts per outlier key, as the contract's `OutlierGuard` sees them."""

    counts: dict[OutlierKey, int] = field(default_factory=dict)
    ready: list[OutlierKey] = field(default_factory=list)

    def observe(self, tenant: str, campaign: str | None, event_type: str, cost: int, revenue: int) -> None:
        if cost > 0:
            self._count((tenant, campaign or "", event_type, "cost"))
        if revenue > 0:
            self._count((tenant, campaign or "", event_type, "revenue"))

    def _count(self, key: OutlierKey) -> None:
        count = self.counts.get(key, 0) + 1
        self.counts[key] = count
        if count == MIN_ACCEPTED:
            self.ready.append(key)


class ReasonSchedule:
    """The deterministic sequence of reasons for a stream's invalid messages."""

    def __init__(self, draws: DrawStream) -> None:
        cycle = [r for r in Reason for _ in range(1 if r is Reason.OVERSIZED else 4)]
        for i in range(len(cycle) - 1, 0, -1):  # Fisher-Yates with the stream's draws
            j = draws.below(i + 1)
            cycle[i], cycle[j] = cycle[j], cycle[i]
        self._cycle = cycle
        self._next = 0
        self.owed_outliers = 0

    def next_reason(self, outlier_possible: bool) -> Reason:
        if outlier_possible and self.owed_outliers:
            self.owed_outliers -= 1
            return Reason.OUTLIER
        while True:
            reason = self._cycle[self._next % len(self._cycle)]
            self._next += 1
            if reason is not Reason.OUTLIER or outlier_possible:
                return reason
            self.owed_outliers += 1


def fill_outlier(event: Event, tenant: TenantModel, campaign: Campaign | None, anonymous_id: str,
                 draws: DrawStream) -> None:
    """A valid-looking event of the key's type whose amount is OUTLIER_FACTOR times the usual one."""
    kind = event["event_type"]
    if kind == "conversion":
        event["user_id"] = "user-" + anonymous_id.removeprefix("anon-")
        conversion(event, tenant, 1, draws)
        event["performance_metrics"]["revenue"] = round(tenant.aov * OUTLIER_FACTOR, 2)
        return
    assert campaign is not None, f"outlier key of {kind} without a campaign"
    if kind == "touchpoint":
        event["anonymous_id"] = anonymous_id
        touchpoint(event, campaign, True, draws)
        event["performance_metrics"]["cost"] = round(campaign.cpc * OUTLIER_FACTOR, 2)
    else:
        ad_metrics(event, campaign, draws)
        event["performance_metrics"]["cost"] = round(event["performance_metrics"]["cost"] * OUTLIER_FACTOR, 2)

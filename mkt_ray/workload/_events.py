"""Valid events of every type, as dicts in wire order, with the KPI contribution of each.

Amounts are drawn in whole cents from lognormals with sigma <= 0.45 in log space around a fixed median
per (tenant, campaign, event type), so the contract's outlier rule (8 robust sigmas in log1p space,
never less than 4 log1p units) cannot fire on this traffic.
"""

from __future__ import annotations

import math
from typing import Any

from mkt_ray.workload._model import CHANNEL_NAMES, Campaign, TenantModel
from mkt_ray.workload._people import Person
from mkt_ray.workload._random import DrawStream

Event = dict[str, Any]
Metrics = tuple[int, int, int, int, int]  # impressions, clicks, conversions, cost cents, revenue cents
CLICK_COST_SIGMA = 0.45
REVENUE_SIGMA = 0.45
OPTIMIZE_ACTIONS = ("bid_increase", "bid_decrease", "budget_shift", "creative_swap", "audience_narrow")


def head(event_id: str, tenant: str, event_type: str, timestamp: str) -> Event:
    return {"schema_version": 1, "event_id": event_id, "tenant_id": tenant,
            "event_type": event_type, "timestamp": timestamp}


def cents(median: float, sigma: float, draws: DrawStream) -> int:
    """A positive amount in cents, lognormal around `median` (in currency units)."""
    return max(1, round(median * 100.0 * math.exp(sigma * draws.normal())))


def touchpoint(event: Event, campaign: Campaign, clicked: bool, draws: DrawStream) -> Metrics:
    """Fill a touchpoint (identity already set): an impression, or an impression and a paid click."""
    event["source"] = CHANNEL_NAMES[campaign.channel]
    event["campaign_id"] = campaign.id
    if not clicked:
        event["performance_metrics"] = {"impressions": 1}
        return (1, 0, 0, 0, 0)
    cost = cents(campaign.cpc, CLICK_COST_SIGMA, draws) if campaign.cpc > 0 else 0
    metrics: dict[str, Any] = {"impressions": 1, "clicks": 1}
    if cost:
        metrics["cost"] = cost / 100
    event["performance_metrics"] = metrics
    return (1, 1, 0, cost, 0)


def conversion(event: Event, tenant: TenantModel, conversions: int, draws: DrawStream) -> Metrics:
    revenue = cents(tenant.aov, REVENUE_SIGMA, draws)
    metrics: dict[str, Any] = {"revenue": revenue / 100}
    if conversions != 1 or draws.chance(0.2):
        metrics["conversions"] = conversions
    event["performance_metrics"] = metrics
    return (0, 0, conversions, 0, revenue)


def ad_metrics(event: Event, campaign: Campaign, draws: DrawStream) -> Metrics:
    """A platform report: impressions >= clicks >= conversions; cost ~ clicks x cpc (log sd ~0.3)."""
    impressions = max(100, round(campaign.ad_impressions * math.exp(0.25 * draws.normal())))
    clicks = max(1, min(impressions, round(impressions * campaign.ad_ctr * math.exp(0.15 * draws.normal()))))
    conversions = min(clicks, round(clicks * campaign.ad_cvr * math.exp(0.3 * draws.normal())))
    cost = max(1, round(clicks * campaign.cpc * 100.0 * math.exp(0.1 * draws.normal())))
    event["source"] = CHANNEL_NAMES[campaign.channel]
    event["campaign_id"] = campaign.id
    event["performance_metrics"] = {"impressions": impressions, "clicks": clicks,
                                    "conversions": conversions, "cost": cost / 100}
    return (impressions, clicks, conversions, cost, 0)


def lifecycle(event: Event, campaign: Campaign, draws: DrawStream) -> None:
    """campaign_launch / campaign_optimize / campaign_terminate, with a little metadata."""
    event["source"] = CHANNEL_NAMES[campaign.channel]
    event["campaign_id"] = campaign.id
    kind = event["event_type"]
    if kind == "campaign_launch":
        event["metadata"] = {"objective": "conversions", "daily_budget": round(50 + 950 * draws.uniform())}
    elif kind == "campaign_optimize":
        event["metadata"] = {"action": draws.pick(OPTIMIZE_ACTIONS), "delta_pct": round(40 * draws.uniform() - 20, 1)}
    else:
        event["metadata"] = {"reason": "flight_ended"}


def person_event(event: Event, tenant: TenantModel, person: Person, draws: DrawStream) -> Metrics | None:
    """Fill the person's next scripted event into `event` (whose event_type is that step's)."""
    step = person.steps[person.position]
    person.position += 1
    kind = step[0]
    if kind == "identify":
        person.identified = True
    event.update(person.identity())
    if kind == "touchpoint":
        return touchpoint(event, step[1], step[2], draws)
    if kind == "conversion":
        return conversion(event, tenant, step[1], draws)
    if kind == "identify" and person.email_sha256 is not None:
        event["email_sha256"] = person.email_sha256
    elif kind == "stage_change":
        event["metadata"] = {"stage": step[1]}
    elif kind == "personalization":
        event["metadata"] = {"experience_id": step[1], "variant": "b" if draws.chance(0.5) else "a"}
    elif kind == "consent":
        granted = step[1]
        event["consent"] = {"analytics": granted, "personalization": granted and draws.chance(0.7),
                            "advertising": granted and draws.chance(0.6)}
    return None


def base_event(event: Event, tenant: TenantModel, paid: list[Campaign], anonymous_id: str, draws: DrawStream) -> None:
    """Fill a plain valid event of `event["event_type"]` (the raw material of invalid messages)."""
    kind = event["event_type"]
    if kind in ("touchpoint", "ad_metrics") or kind.startswith("campaign_"):
        campaign = draws.pick(paid)
        if kind == "touchpoint":
            event["anonymous_id"] = anonymous_id
            touchpoint(event, campaign, draws.chance(0.4), draws)
        elif kind == "ad_metrics":
            ad_metrics(event, campaign, draws)
        else:
            lifecycle(event, campaign, draws)
        return
    if kind in ("identify", "conversion"):
        event["user_id"] = "user-" + anonymous_id.removeprefix("anon-")
    if kind != "conversion":
        event["anonymous_id"] = anonymous_id
    if kind == "conversion":
        conversion(event, tenant, 1, draws)
    elif kind == "stage_change":
        event["metadata"] = {"stage": "lead"}
    elif kind == "personalization":
        event["metadata"] = {"experience_id": "hero-banner"}
    elif kind == "consent":
        event["consent"] = {"analytics": True, "advertising": False}

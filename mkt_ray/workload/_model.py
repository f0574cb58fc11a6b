"""The generating model: channels with a known conversion lift, tenants with campaigns on them.

A person's journey touches a set S of channels; the person converts with probability
`sigmoid(base_logit[tenant] + sum(lift[c] for c in S))` (each channel counts once, however often it
touched). `CausalShares` turns that model into the true causal share of each channel (see its doc).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from mkt_ray.workload._random import cumulative


@dataclass(frozen=True, slots=True)
class Channel:
    """One acquisition channel; `lift` is its additive log-odds effect on conversion."""

    name: str
    lift: float
    click_rate: float  # P(click | touch) on user-level touchpoints
    cpc: float  # median cost per click; 0 = free (organic), no cost on the event
    reach: float  # relative share of touches, before the tenant's own mix
    campaigns: int  # campaigns per tenant


CHANNELS: tuple[Channel, ...] = (
    Channel("google_ads", 0.90, 0.30, 1.10, 0.24, 3),
    Channel("meta", 0.60, 0.18, 0.65, 0.22, 3),
    Channel("email", 0.45, 0.25, 0.06, 0.14, 2),
    Channel("tiktok", 0.25, 0.12, 0.35, 0.12, 2),
    Channel("linkedin", 0.70, 0.10, 3.20, 0.07, 2),
    Channel("organic_search", 0.50, 0.40, 0.0, 0.13, 1),
    Channel("display", 0.10, 0.04, 0.25, 0.08, 2),
)
CHANNEL_NAMES: tuple[str, ...] = tuple(c.name for c in CHANNELS)


@dataclass(frozen=True, slots=True)
class Campaign:
    id: str
    channel: int  # index into CHANNELS
    cpc: float  # median cost per click of this campaign
    ad_impressions: float  # median impressions per platform report (ad_metrics)
    ad_ctr: float
    ad_cvr: float


@dataclass(slots=True)
class TenantModel:
    """One tenant's campaigns, channel mix, baseline conversion odds and order value."""

    name: str
    base_logit: float
    aov: float  # median revenue of a conversion
    mix: list[float]  # cumulative channel weights
    by_channel: list[list[Campaign]]
    campaigns: list[Campaign] = field(default_factory=list)

    p_convert: list[float] = field(default_factory=list)  # by channel bit set, filled on build

    def __post_init__(self) -> None:
        self.p_convert = [_sigmoid(self.base_logit + _lift(mask)) for mask in range(1 << len(CHANNELS))]

    def conversion_probability(self, channels: int) -> float:
        """P(convert) for a journey whose channels are the set bits of `channels`."""
        return self.p_convert[channels]


def _lift(channels: int) -> float:
    return sum(c.lift for i, c in enumerate(CHANNELS) if channels >> i & 1)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def build_tenants(names: list[str], rng: np.random.Generator) -> list[TenantModel]:
    """Each tenant's fixed parameters, drawn once from `rng`."""
    return [_build_tenant(name, rng) for name in names]


def _build_tenant(name: str, rng: np.random.Generator) -> TenantModel:
    reach = np.array([c.reach for c in CHANNELS]) * rng.lognormal(0.0, 0.3, len(CHANNELS))
    by_channel: list[list[Campaign]] = []
    for index, channel in enumerate(CHANNELS):
        campaigns = []
        for k in range(channel.campaigns):
            campaigns.append(Campaign(
                id=f"{name}-{channel.name}-{k + 1}",
                channel=index,
                cpc=round(channel.cpc * float(rng.lognormal(0.0, 0.25)), 4),
                ad_impressions=float(rng.uniform(2_000, 8_000)),
                ad_ctr=float(rng.uniform(0.01, 0.05)),
                ad_cvr=float(rng.uniform(0.02, 0.10)),
            ))
        by_channel.append(campaigns)
    return TenantModel(
        name=name,
        base_logit=round(float(rng.normal(-3.0, 0.25)), 4),
        aov=round(float(rng.lognormal(math.log(80.0), 0.4)), 2),
        mix=cumulative(reach.tolist()),
        by_channel=by_channel,
        campaigns=[c for group in by_channel for c in group],
    )


class CausalShares:
    """The true causal share of conversions by channel, accumulated over completed journeys.

    For a journey with channel set S and conversion probability p(S), removing channel c from the
    world changes its expected conversions by p(S) - p(S minus c). Summed over the completed journeys
    of a tenant (or of all tenants), that is the expected number of conversions lost without c;
    `removal_effect[c]` = that sum / sum of p(S) (the fraction of expected conversions lost), and
    `share[c]` = removal_effect[c] / sum over channels of removal effects, so shares sum to 1.
    The expectation is over the conversion draw, given the journeys the stream actually contains.
    """

    def __init__(self, tenants: list[str]) -> None:
        self.expected = {t: 0.0 for t in tenants}
        self.journeys = {t: 0 for t in tenants}
        self.removal = {t: [0.0] * len(CHANNELS) for t in tenants}

    def add(self, tenant: TenantModel, channels: int, p: float) -> None:
        self.expected[tenant.name] += p
        self.journeys[tenant.name] += 1
        removal = self.removal[tenant.name]
        for i in range(len(CHANNELS)):
            if channels >> i & 1:
                removal[i] += p - tenant.conversion_probability(channels & ~(1 << i))

    def shares(self) -> dict[str, dict[str, float]]:
        """{tenant or "all": {channel: share}}; all zeros where no journey touched a channel."""
        out = {t: _normalised(r) for t, r in self.removal.items()}
        out["all"] = _normalised([sum(r[i] for r in self.removal.values()) for i in range(len(CHANNELS))])
        return out

    def removal_effects(self) -> dict[str, float]:
        """Fraction of all expected conversions lost when each channel is removed (all tenants)."""
        expected = sum(self.expected.values())
        return {
            name: (sum(r[i] for r in self.removal.values()) / expected) if expected else 0.0
            for i, name in enumerate(CHANNEL_NAMES)
        }


def _normalised(removal: list[float]) -> dict[str, float]:
    total = sum(removal)
    return {name: (r / total if total > 0 else 0.0) for name, r in zip(CHANNEL_NAMES, removal, strict=True)}

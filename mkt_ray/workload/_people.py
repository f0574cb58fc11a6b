"""Persons and their journeys: a script of user-level events decided when the person appears.

A person starts anonymous (`anonymous_id`, sometimes a `device_id`, sometimes an `account_id`), may
record consent first (some opt out of analytics), touches campaigns on one or more channels (an
impression, sometimes a click), changes stage, sees personalised experiences, is sometimes identified
(an `identify` event joining `user_id` to the anonymous id; later events carry both), and converts with
the model's probability for the set of channels touched. Never personal data: the optional
`email_sha256` is the hash of a synthetic token.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from mkt_ray.workload._model import CHANNELS, Campaign, TenantModel
from mkt_ray.workload._random import DrawStream

STAGES = ("visitor", "lead", "mql", "sql", "opportunity")
EXPERIENCES = ("hero-banner", "exit-intent-offer", "recommended-products", "pricing-variant-b", "welcome-back")
Step = tuple  # ("touchpoint", Campaign, clicked) | ("stage_change", stage) | ("conversion",) | ...


@dataclass(slots=True)
class Person:
    """One person's identities and the events they have left to send."""

    anonymous: dict[str, str]  # identity fields before an identify event
    known: dict[str, str]  # identity fields after it
    email_sha256: str | None
    steps: list[Step]
    channels: int  # bit set of the channels the journey touches
    p_convert: float
    position: int = 0
    identified: bool = False

    def identity(self) -> dict[str, str]:
        return self.known if self.identified else self.anonymous

    @property
    def done(self) -> bool:
        return self.position >= len(self.steps)


def new_person(number: int, tenant: TenantModel, draws: DrawStream, tag: str) -> Person:
    """A fresh anonymous person of `tenant` with a complete journey script."""
    touches = _touches(tenant, draws)
    channels = 0
    for _, campaign, _ in touches:
        channels |= 1 << campaign.channel
    p = tenant.conversion_probability(channels)
    converts = draws.chance(p)
    anonymous, known = _identities(number, draws, tag)
    email = hashlib.sha256(f"synthetic-{tag}-{number}".encode()).hexdigest() if draws.chance(0.5) else None
    steps = _script(touches, converts, draws)
    return Person(anonymous, known, email, steps, channels, p)


def _touches(tenant: TenantModel, draws: DrawStream) -> list[Step]:
    """The journey's touchpoints: none for some direct visitors, else 1 + Poisson(1.8), at most 10."""
    if draws.chance(0.06):
        return []
    touches: list[Step] = []
    for _ in range(1 + min(draws.poisson(1.8), 9)):
        channel = draws.weighted(tenant.mix)
        campaign: Campaign = draws.pick(tenant.by_channel[channel])
        touches.append(("touchpoint", campaign, draws.chance(CHANNELS[channel].click_rate)))
    return touches


def _identities(number: int, draws: DrawStream, tag: str) -> tuple[dict[str, str], dict[str, str]]:
    anonymous = {"anonymous_id": f"anon-{tag}-{number:x}"}
    if draws.chance(0.3):
        anonymous["device_id"] = f"dev-{tag}-{number:x}"
    known = {"user_id": f"user-{tag}-{number:x}", **anonymous}
    if draws.chance(0.1):
        known["account_id"] = f"acct-{tag}-{number // 8:x}"
    return anonymous, known


def _script(touches: list[Step], converts: bool, draws: DrawStream) -> list[Step]:
    steps: list[Step] = []
    if draws.chance(0.15):
        steps.append(("consent", draws.chance(0.8)))
    if draws.chance(0.5):
        steps.append(("stage_change", "visitor"))
    for k, touch in enumerate(touches):
        steps.append(touch)
        if k == 0 and draws.chance(0.4):
            steps.append(("stage_change", draws.pick(STAGES[1:])))
        if draws.chance(0.15):
            steps.append(("personalization", draws.pick(EXPERIENCES)))
    if draws.chance(0.85 if converts else 0.3):
        first = next((i for i, s in enumerate(steps) if s[0] == "touchpoint"), len(steps) - 1)
        steps.insert(first + 1 + draws.below(len(steps) - first), ("identify",))
    if converts:
        steps.append(("conversion", 2 if draws.chance(0.04) else 1))
        steps.append(("stage_change", "customer"))
    if not steps:
        steps.append(("stage_change", "visitor"))
    return steps

"""The engine behind a workload: fills the stream slot by slot and counts the ground truth.

Each slot is, by a uniform draw: an invalid message (`invalid_share`), a re-send of one of the last
512 valid lines (`duplicate_share`), a platform report (`ad_metrics`, 3 %), a campaign lifecycle
event (0.4 %: `campaign_optimize`, or `campaign_terminate` in the last 3 % of the span), or the next
scripted event of a random live person of a random tenant. Every campaign's `campaign_launch` opens
the stream. Tenants get traffic in proportion to 1 / (rank + 1) ** 0.7.
"""

from __future__ import annotations

from collections import deque

import msgspec
import numpy as np

from mkt_ray.contract import Reason
from mkt_ray.workload._clock import StreamClock
from mkt_ray.workload._events import Event, Metrics, ad_metrics, base_event, head, lifecycle, person_event
from mkt_ray.workload._invalid import InvalidContext, craft_invalid
from mkt_ray.workload._model import Campaign, TenantModel, build_tenants
from mkt_ray.workload._outliers import OutlierTargets, ReasonSchedule, fill_outlier
from mkt_ray.workload._people import Person, new_person
from mkt_ray.workload._random import DrawStream, cumulative
from mkt_ray.workload._spec import WorkloadSpec
from mkt_ray.workload._truth import TruthCounter

_ENCODE = msgspec.json.Encoder().encode
AD_METRICS_SHARE = 0.03
LIFECYCLE_SHARE = 0.004
TERMINATE_FROM = 0.97
RESEND_WINDOW = 512
# a re-send comes at most 12 h of event time after its original, so it is a duplicate within the
# contract's 24 h window even on multi-day spans
RESEND_MAX_GAP_MS = 12 * 3_600_000


class StreamEngine:
    """Produces the lines of one workload in order; `block(start, stop)` returns lines [start, stop)."""

    def __init__(self, spec: WorkloadSpec, counter: TruthCounter) -> None:
        setup, clock, draws = (np.random.default_rng(s) for s in np.random.SeedSequence(spec.seed).spawn(3))
        self.spec, self.counter = spec, counter
        self.tenants = build_tenants(list(spec.tenants), setup)
        self.by_name = {t.name: t for t in self.tenants}
        self.tenant_mix = cumulative([1.0 / (k + 1) ** 0.7 for k in range(len(self.tenants))])
        self.paid = [[c for c in t.campaigns if c.cpc > 0] for t in self.tenants]
        self.live = [list(paid) for paid in self.paid]  # campaigns not yet terminated
        self.draws = DrawStream(draws)
        self.clock = StreamClock(spec.n_events, spec.now_ms, round(spec.span_hours * 3_600_000), clock)
        self.tag = f"{spec.seed & 0xFFFFFFFF:x}"
        self._ids = self._people = 0
        size = max(16, min(2000, spec.n_events // (40 * len(self.tenants))))
        self.pools = [[self._new_person(t) for _ in range(size)] for t in self.tenants]
        self.launches = deque(_interleave(self.tenants, self.paid))
        self.resend: list[bytes] = []  # the last RESEND_WINDOW valid lines, and the slot of each
        self.resend_slot: list[int] = []
        self.resend_gap = RESEND_MAX_GAP_MS / max(self.clock.step, 1e-9)  # in slots
        self.targets = OutlierTargets()
        self.schedule = ReasonSchedule(self.draws)
        self.invalid = InvalidContext(self.draws, self._base, spec.now_ms, _unknown_tenants(spec.tenants))
        self.thresholds = _thresholds(spec)
        self._ts, self._index = "", 0  # the current slot's (maybe late) time and position
        self.outcomes: list[str] = []  # per line of the current block: "valid", "duplicate" or a reason code

    def block(self, start: int, stop: int) -> list[bytes]:
        """Lines [start, stop); `outcomes` then holds what the contract must make of each."""
        on_time, maybe_late = self.clock.block(start, stop)
        self.outcomes = []
        return [self._slot(start + i, on_time[i], maybe_late[i]) for i in range(stop - start)]

    def _slot(self, index: int, on_time: str, late: str) -> bytes:
        self._ts, self._index = late, index
        if self.launches:
            return self._launch(on_time)
        u = self.draws.uniform()
        invalid, duplicate, ads, cycle = self.thresholds
        if u < invalid:
            return self._invalid()
        if u < duplicate:
            return self._resend() or self._person_event(on_time, late)
        if u < ads:
            return self._ad_metrics(late)
        if u < cycle:
            return self._lifecycle(index, late)
        return self._person_event(on_time, late)

    def _resend(self) -> bytes | None:
        """A recent valid line again (None when the one drawn is too old to count as a duplicate)."""
        if not self.resend:
            return None
        k = self.draws.below(len(self.resend))
        if self._index - self.resend_slot[k] > self.resend_gap:
            return None
        self.counter.add_duplicate()
        self.outcomes.append("duplicate")
        return self.resend[k]

    def _person_event(self, on_time: str, late: str) -> bytes:
        t = self.draws.weighted(self.tenant_mix)
        tenant, pool = self.tenants[t], self.pools[t]
        k = self.draws.below(len(pool))
        person = pool[k]
        kind = person.steps[person.position][0]
        event = head(self._next_id(), tenant.name, kind, on_time if kind == "conversion" else late)
        metrics = person_event(event, tenant, person, self.draws)
        if person.done:
            self.counter.shares.add(tenant, person.channels, person.p_convert)
            pool[k] = self._new_person(tenant)
        return self._valid(tenant.name, event, metrics)

    def _ad_metrics(self, ts: str) -> bytes:
        t = self.draws.weighted(self.tenant_mix)
        event = head(self._next_id(), self.tenants[t].name, "ad_metrics", ts)
        metrics = ad_metrics(event, self.draws.pick(self.paid[t]), self.draws)
        return self._valid(self.tenants[t].name, event, metrics)

    def _lifecycle(self, index: int, ts: str) -> bytes:
        t = self.draws.weighted(self.tenant_mix)
        live = self.live[t]
        terminate = index >= TERMINATE_FROM * self.spec.n_events and len(live) > 1
        campaign = live.pop(self.draws.below(len(live))) if terminate else self.draws.pick(live)
        event = head(self._next_id(), self.tenants[t].name, "campaign_" + ("terminate" if terminate else "optimize"), ts)
        lifecycle(event, campaign, self.draws)
        return self._valid(self.tenants[t].name, event, None)

    def _launch(self, ts: str) -> bytes:
        tenant, campaign = self.launches.popleft()
        event = head(self._next_id(), tenant, "campaign_launch", ts)
        lifecycle(event, campaign, self.draws)
        return self._valid(tenant, event, None)

    def _invalid(self) -> bytes:
        reason = self.schedule.next_reason(bool(self.targets.ready))
        if reason is Reason.OUTLIER:
            tenant, campaign, event_type, _ = self.draws.pick(self.targets.ready)
            event = head(self._next_id(), tenant, event_type, self._ts)
            fill_outlier(event, self.by_name[tenant], self._campaign(tenant, campaign), self._anonymous_id(), self.draws)
            line = _ENCODE(event)
        else:
            line = craft_invalid(reason, self.invalid)
        self.counter.add_rejected(reason)
        self.outcomes.append(reason.code)
        return line

    def _valid(self, tenant: str, event: Event, metrics: Metrics | None) -> bytes:
        line = _ENCODE(event)
        self.counter.add_valid(tenant, metrics)
        self.outcomes.append("valid")
        if metrics is not None and (metrics[3] or metrics[4]):
            self.targets.observe(tenant, event.get("campaign_id"), event["event_type"], metrics[3], metrics[4])
        if len(self.resend) < RESEND_WINDOW:
            self.resend.append(line)
            self.resend_slot.append(self._index)
        else:
            k = self.counter.valid % RESEND_WINDOW
            self.resend[k], self.resend_slot[k] = line, self._index
        return line

    def _base(self, event_type: str) -> Event:
        """A fresh valid event of this type for a random tenant at the current slot's time."""
        t = self.draws.weighted(self.tenant_mix)
        event = head(self._next_id(), self.tenants[t].name, event_type, self._ts)
        base_event(event, self.tenants[t], self.paid[t], self._anonymous_id(), self.draws)
        return event

    def _campaign(self, tenant: str, campaign_id: str) -> Campaign | None:
        return next((c for c in self.by_name[tenant].campaigns if c.id == campaign_id), None)

    def _new_person(self, tenant: TenantModel) -> Person:
        self._people += 1
        return new_person(self._people, tenant, self.draws, self.tag)

    def _anonymous_id(self) -> str:
        return f"anon-{self.tag}-q{self._ids:x}"

    def _next_id(self) -> str:
        self._ids += 1
        return f"ev-{self.tag}-{self._ids:08x}"


def _thresholds(spec: WorkloadSpec) -> tuple[float, float, float, float]:
    invalid = spec.invalid_share
    duplicate = invalid + spec.duplicate_share
    ads = duplicate + AD_METRICS_SHARE * (1 - duplicate)
    return invalid, duplicate, ads, ads + LIFECYCLE_SHARE * (1 - duplicate)


def _interleave(tenants: list[TenantModel], paid: list[list[Campaign]]) -> list[tuple[str, Campaign]]:
    """(tenant, campaign) pairs of the paid campaigns, round-robin over tenants."""
    out: list[tuple[str, Campaign]] = []
    for k in range(max(len(p) for p in paid)):
        out += [(t.name, p[k]) for t, p in zip(tenants, paid, strict=True) if k < len(p)]
    return out


def _unknown_tenants(tenants: tuple[str, ...]) -> tuple[str, ...]:
    """Well-formed tenant ids that are not registered."""
    names = [f"{stem}-{k}" for k in range(len(tenants) + 1) for stem in ("unregistered", "ghost-tenant", "staging")]
    return tuple(name for name in names if name not in tenants)

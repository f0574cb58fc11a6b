"""The per-person replay behind `read_event_journeys`: identity stitching, consent, lookback crediting."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from mkt_ray.contract import IDENTITY_FIELDS, Event

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

Node = tuple[str, str, str]  # (tenant_id, identity field, value)


@dataclass
class _Person:
    """A union-find root's data: touchpoints as [ts_ms, line, channel, credited] and the latest consent."""

    touchpoints: list[list] = field(default_factory=list)
    consent: tuple[int, bool] = (-1, True)  # (line of the latest consent event, analytics granted)


class JourneyReplay:
    """Applies valid, non-duplicate events in processing order; collects credited conversions."""

    def __init__(self, lookback_ms: int) -> None:
        self.lookback_ms = lookback_ms
        self.parent: dict[Node, Node] = {}
        self.people: dict[Node, _Person] = {}
        # (touchpoints as (channel, ts_ms) in credit order, conversion ts_ms, conversions, revenue)
        self.conversions: list[tuple[list[tuple[str, int]], int, float, float]] = []
        self.no_consent = 0
        self.line = 0

    def apply(self, event: Event) -> None:
        self.line += 1
        nodes = [(event.tenant_id, name, value) for name in IDENTITY_FIELDS
                 if (value := getattr(event, name)) is not None]
        if not nodes:
            return  # not user-level: no journey
        roots = {self._find(node) for node in nodes}
        analytics = event.consent.analytics if event.consent is not None else None
        if analytics is False:
            if event.event_type == "consent":
                for root in roots:
                    self.people[root].consent = (self.line, False)
            self.no_consent += 1
            return
        regrant = event.event_type == "consent" and analytics is True
        if not regrant and not max(self.people[root].consent for root in roots)[1]:
            self.no_consent += 1
            return
        person = self.people[self._union(roots)]
        if regrant:
            person.consent = (self.line, True)
        elif event.event_type == "touchpoint":
            person.touchpoints.append([epoch_ms(event.timestamp), self.line, event.source, False])
        elif event.event_type == "conversion":
            self._convert(person, event)

    def null_paths(self) -> list[tuple[str, ...]]:
        """Per person, the touchpoints no conversion credited, in journey order (persons in first-seen order)."""
        paths = []
        for person in self.people.values():
            left = sorted((tp for tp in person.touchpoints if not tp[3]), key=lambda tp: (tp[0], tp[1]))
            if left:
                paths.append(tuple(tp[2] for tp in left))
        return paths

    def _convert(self, person: _Person, event: Event) -> None:
        ts_ms = epoch_ms(event.timestamp)
        window = sorted((tp for tp in person.touchpoints if ts_ms - self.lookback_ms < tp[0] <= ts_ms),
                        key=lambda tp: (tp[0], tp[1]))
        for tp in window:
            tp[3] = True
        metrics = event.performance_metrics
        count = metrics.conversions if metrics is not None and metrics.conversions is not None else 1
        revenue = metrics.revenue if metrics is not None and metrics.revenue is not None else 0.0
        self.conversions.append(([(tp[2], tp[0]) for tp in window], ts_ms, float(count), float(revenue)))

    def _find(self, node: Node) -> Node:
        if node not in self.parent:
            self.parent[node] = node
            self.people[node] = _Person()
            return node
        root = node
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[node] != root:  # path compression
            self.parent[node], node = root, self.parent[node]
        return root

    def _union(self, roots: set[Node]) -> Node:
        """One root for all; the bigger touchpoint list absorbs the others, the latest consent wins."""
        keep = max(roots, key=lambda root: (len(self.people[root].touchpoints), root))
        person = self.people[keep]
        for root in roots - {keep}:
            other = self.people.pop(root)
            person.touchpoints += other.touchpoints
            person.consent = max(person.consent, other.consent)
            self.parent[root] = keep
        return keep


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime, exactly (no float rounding)."""
    return (moment - _EPOCH) // _MS

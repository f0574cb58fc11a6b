"""Journeys from an events JSONL file (contract v1), replayed in file order as the processing order.

Per the contract's identity, consent and attribution semantics, with a file standing in for the stream:
- a line the reference classifier rejects is skipped and counted by reason (`invalid`), with any
  well-formed tenant id accepted (no registry offline); the time rules (`future_timestamp`, `too_old`)
  judge the processing time `now_ms`: the wall clock by default, as if the file were sent now, or an
  earlier moment to replay an old export (the rules must stay on: a future-dated event would otherwise
  push the tenant's watermark ahead and let later duplicates through);
- a repeat of an `event_id` within 24 h of event time (per tenant) is a duplicate: skipped and counted;
- identity fields (user_id, anonymous_id, device_id, account_id) on one event, `identify` included, are
  one person from that line on (union-find per tenant);
- an event carrying `consent.analytics: false`, or of a person whose latest consent event said so,
  enters no journey and links nothing (`no_consent`); without a consent event consent is granted (a
  tenant's `consent_required` is not known offline);
- a conversion credits the person's touchpoints from earlier lines whose timestamps lie in
  (t − lookback, t], ordered by timestamp then line; with none it goes to `(direct)`;
- the person's touchpoints that no conversion credited form one non-converting (null) path for Markov.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import numpy as np

from mkt_ray.attribution._paths import ChannelPath
from mkt_ray.attribution._replay import JourneyReplay, epoch_ms
from mkt_ray.attribution._touches import DAY_MS, Touches
from mkt_ray.contract import DedupIndex, Event, classify
from mkt_ray.errors import InputError

_decode_event = msgspec.json.Decoder(Event).decode


class _AnyTenant:
    """Every tenant is registered: offline there is no registry (the id pattern is still checked)."""

    def __contains__(self, tenant: object) -> bool:
        return True


@dataclass
class EventJourneys:
    """Conversions with their credited touchpoints, the null paths, and what was skipped on the way."""

    touches: Touches
    null_paths: list[tuple[str, ...]]
    lines: int = 0
    invalid: dict[str, int] = field(default_factory=dict)  # reason code -> lines
    duplicates: int = 0
    no_consent: int = 0

    def channel_paths(self) -> list[ChannelPath]:
        """Paths for Markov: one per conversion (its conversions and revenue), one per null path."""
        t = self.touches
        codes = t.channel_codes.tolist()
        starts = t.starts.tolist()
        paths = [
            ChannelPath(tuple(t.channels[code] for code in codes[starts[c]:starts[c + 1]]),
                        float(t.conversions[c]), float(t.revenue[c]), 0.0)
            for c in range(len(starts) - 1)
        ]
        return paths + [ChannelPath(channels, 0.0, 0.0, 1.0) for channels in self.null_paths]


def read_event_journeys(path: Path, lookback_days: float = 30.0, tenant: str | None = None,
                        now_ms: int | None = None) -> EventJourneys:
    """Replay the file (optionally one tenant's events) into conversions, touchpoints and null paths."""
    now_ms = epoch_ms(datetime.now(UTC)) if now_ms is None else now_ms
    events, lines, invalid = _valid_events(path, tenant, now_ms)
    duplicate = _duplicates(events)
    replay = JourneyReplay(int(lookback_days * DAY_MS))
    for event, is_duplicate in zip(events, duplicate.tolist(), strict=True):
        if not is_duplicate:
            replay.apply(event)
    touches = Touches.from_journeys(replay.conversions, timed=True)
    return EventJourneys(touches, replay.null_paths(), lines, invalid, int(duplicate.sum()), replay.no_consent)


def _valid_events(path: Path, tenant: str | None, now_ms: int) -> tuple[list[Event], int, dict[str, int]]:
    try:
        raw_lines = Path(path).read_bytes().split(b"\n")
    except OSError as exc:
        raise InputError(f"cannot read events file {path}: {exc.strerror or exc}") from exc
    events: list[Event] = []
    lines, invalid, tenants, seen = 0, Counter(), _AnyTenant(), set()
    for raw in raw_lines:
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        lines += 1
        reason = classify(raw, tenants, now_ms)
        if reason is not None:
            invalid[reason.code] += 1
            continue
        event = _decode_event(raw)
        seen.add(event.tenant_id)
        if tenant is None or event.tenant_id == tenant:
            events.append(event)
    if tenant is not None and tenant not in seen:
        raise InputError(f"no valid event of tenant {tenant!r} in {path}; tenants with valid events: "
                         f"{', '.join(sorted(seen)) or 'none'}")
    return events, lines, dict(sorted(invalid.items()))


def _duplicates(events: list[Event]) -> np.ndarray:
    if not events:
        return np.zeros(0, dtype=bool)
    return DedupIndex().mark_duplicates(
        np.array([e.tenant_id for e in events]), np.array([e.event_id for e in events]),
        np.array([epoch_ms(e.timestamp) for e in events], dtype=np.int64),
    )


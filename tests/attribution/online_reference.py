"""Plain-Python reference for the online attribution engine, written from the event contract's
"Identity and consent semantics" and "Attribution semantics", one event at a time, with lists, sets
and dicts (no union-find, no sorted state, no eviction bookkeeping).

Events are dicts with the EventColumns names (`event_type` as a name, `consent_analytics` -1/0/1).
Besides the contract, it states the engine's two documented bounds declaratively, per conversion:
a person's touchpoints count only if their timestamp is after (the person's newest touchpoint or
conversion time so far - lookback), and only the `cap` latest (by timestamp, then processing order).
A person's id is its identity registered first (`field:value`).

An event `{"forget": identity, "through": {partition: offset} or None}` in the list is a right-to-be-
forgotten request: the person of `identity` (every identity linked to it, its touchpoints and consent)
is dropped, and events carrying any of those identities at or below `through` (default: the offsets
seen so far) are ignored from then on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

IDENTITY_FIELDS = ("user_id", "anonymous_id", "device_id", "account_id")
USER_LEVEL = {"touchpoint", "conversion", "stage_change", "personalization", "identify", "consent"}
RULE_MODELS = ("first_touch", "last_touch", "linear", "position_based", "time_decay")
MODELS = (*RULE_MODELS, "markov", "data_driven")
DAY_MS = 86_400_000


@dataclass
class RefConfig:
    lookback_days: float = 30.0
    half_life_days: float = 7.0
    position_first: float = 0.4
    position_last: float = 0.4
    consent_required: bool = False
    cap: int = 200
    channel_values: dict = field(default_factory=dict)  # "markov" / "data_driven" -> {channel: value}
    matching: dict | None = None  # probabilistic matching: {"threshold", "max_gap_ms", "signals": {key: weight}}


@dataclass
class _State:
    persons: list = field(default_factory=list)  # {"ids": set, "consent": (order, granted) or None}
    registered: dict = field(default_factory=dict)  # identity -> registration order
    touches: list = field(default_factory=list)  # allowed touchpoints: {"id", "ts", "order", "channel", "campaign"}
    times: list = field(default_factory=list)  # (one identity, ts) of allowed touchpoints and conversions
    high: dict = field(default_factory=dict)  # partition -> highest offset seen
    tomb: dict = field(default_factory=dict)  # forgotten identity -> {partition: offset}
    clock: int = 0  # registrations so far
    obs: dict = field(default_factory=dict)  # identity -> (order, ts, {signal key: value}) of its latest signals
    last: dict = field(default_factory=dict)  # (signal key, value) -> identity last seen with it
    links: list = field(default_factory=list)  # probabilistic links: (identity, identity, link ts)


def reference_credits(events: list[dict], cfg: RefConfig) -> list[dict]:
    """Credit rows (the engine's columns) of the conversions among `events`, in processing order."""
    state, rows = _State(), []
    for order, event in enumerate(events):
        if "forget" in event:
            _forget(state, event["forget"], event.get("through"))
            continue
        part, offset = event["partition"], event["offset"]
        if offset <= state.high.get(part, -1):
            continue  # replayed
        state.high[part] = offset
        ids = [f"{name}:{event[name]}" for name in IDENTITY_FIELDS if event[name] is not None]
        if any(offset <= state.tomb.get(identity, {}).get(part, -1) for identity in ids):
            continue  # a forgotten identity's event, replayed
        if event["event_type"] in USER_LEVEL and ids:
            _event(state, cfg, order, event, ids, rows)
    return rows


def _event(state, cfg, order, event, ids, rows) -> None:
    kind, analytics = event["event_type"], event["consent_analytics"]
    mine = [p for p in state.persons if p["ids"] & set(ids)]
    if kind == "consent" and analytics == 0:  # an opt-out: recorded per identity, links nothing
        for identity in ids:
            if not any(identity in p["ids"] for p in mine):
                mine.append(_new_person(state, identity))
        for p in mine:
            p["consent"] = (order, False)
        return
    explicit = [p["consent"] for p in mine if p["consent"] is not None]
    consented = max(explicit)[1] if explicit else not cfg.consent_required
    granting = kind == "consent" and analytics == 1
    if analytics == 0 or not (granting or consented):
        return
    person = _merge(state, mine, ids)
    signals = _signals(cfg, event)
    if signals:
        _match(state, cfg, order, event["ts_ms"], ids[0], person, signals)
    if granting:
        person["consent"] = (order, True)
    elif kind == "touchpoint":
        state.touches.append({"id": ids[0], "ts": event["ts_ms"], "order": order,
                              "channel": event["source"], "campaign": event["campaign_id"]})
        state.times.append((ids[0], event["ts_ms"]))
    elif kind == "conversion":
        state.times.append((ids[0], event["ts_ms"]))
        rows.extend(_conversion_rows(state, cfg, person, event))


def _forget(state, identity, through) -> None:
    person = next((p for p in state.persons if identity in p["ids"]), None)
    ids = person["ids"] if person is not None else set()
    if person is not None:
        state.persons.remove(person)
        state.touches = [tp for tp in state.touches if tp["id"] not in ids]
        state.times = [t for t in state.times if t[0] not in ids]
        for each in ids:
            del state.registered[each]
            state.obs.pop(each, None)
        state.last = {key: who for key, who in state.last.items() if who not in ids}
        state.links = [link for link in state.links if link[0] not in ids and link[1] not in ids]
    for each in ids or {identity}:
        tomb = state.tomb.setdefault(each, {})
        for part, offset in (dict(state.high) if through is None else through).items():
            tomb[part] = max(offset, tomb.get(part, -1))


def _new_person(state, identity) -> dict:
    state.registered[identity] = state.clock
    state.clock += 1
    person = {"ids": {identity}, "consent": None}
    state.persons.append(person)
    return person


def _merge(state, mine, ids) -> dict:
    """One person of `mine` and the ids; the latest explicit consent of the merged ones survives."""
    for identity in ids:
        if identity not in state.registered:
            mine.append(_new_person(state, identity))
    person = mine[0]
    for other in mine[1:]:
        person["ids"] |= other["ids"]
        if other["consent"] is not None and (person["consent"] is None or other["consent"] > person["consent"]):
            person["consent"] = other["consent"]
        state.persons.remove(other)
    return person


def _signals(cfg, event) -> dict:
    """The event's probabilistic-matching signals: configured metadata keys with non-empty text values."""
    if cfg.matching is None or event["metadata"] is None:
        return {}
    metadata = json.loads(event["metadata"])
    return {key: metadata[key] for key in cfg.matching["signals"]
            if isinstance(metadata.get(key), str) and metadata[key]}


def _person_of(state, identity):
    return next((p for p in state.persons if identity in p["ids"]), None)


def _has_user(person) -> bool:
    return any(identity.startswith("user_id:") for identity in person["ids"])


def _consented(cfg, person) -> bool:
    return person["consent"][1] if person["consent"] is not None else not cfg.consent_required


def _match(state, cfg, order, ts, first, person, signals) -> None:
    """Link `person` to the best-scoring person last seen with one of these signal values; then observe."""
    weights = cfg.matching["signals"]
    total = sum(weights.values())
    best = None
    for key, value in signals.items():
        candidate = state.last.get((key, value))
        other = _person_of(state, candidate) if candidate is not None else None
        if other is None or other is person:
            continue
        seen_order, seen_ts, seen = state.obs[candidate]
        if abs(ts - seen_ts) > cfg.matching["max_gap_ms"] or (_has_user(person) and _has_user(other)):
            continue
        if not _consented(cfg, other):
            continue
        score = 0.0
        for k in weights:
            if k in signals and seen.get(k) == signals[k]:
                score += weights[k]
        score /= total
        if score >= cfg.matching["threshold"] and (best is None or (score, seen_order) > best[:2]):
            best = (score, seen_order, candidate, max(ts, seen_ts))
    if best is not None:
        state.links.append((first, best[2], best[3]))
    state.obs[first] = (order, ts, signals)
    for key, value in signals.items():
        state.last[key, value] = first


def _newest(state, person) -> float:
    return max((t for identity, t in state.times if identity in person["ids"]), default=float("-inf"))


def _linked(state, cfg, person) -> list:
    """Persons whose touchpoints a conversion of `person` shares through probabilistic links, now."""
    floor = _newest(state, person) - round(cfg.lookback_days * DAY_MS)
    found = []
    for a, b, link_ts in state.links:
        if a not in person["ids"] and b not in person["ids"]:
            continue
        other = _person_of(state, b if a in person["ids"] else a)
        if other is None or other is person or link_ts <= floor or any(other is f for f in found):
            continue
        if (_has_user(person) and _has_user(other)) or not _consented(cfg, other):
            continue
        found.append(other)
    return found


def _journey(state, cfg, person, ts) -> list[dict]:
    """The touchpoints credited to a conversion of `person` at `ts`, in journey order."""
    own = [dict(tp, link="deterministic") for tp in _own_journey(state, cfg, person, ts)]
    shared = [dict(tp, link="probabilistic") for other in _linked(state, cfg, person)
              for tp in _own_journey(state, cfg, other, ts)] if cfg.matching is not None else []
    return sorted(own + shared, key=lambda tp: (tp["ts"], tp["order"]))


def _own_journey(state, cfg, person, ts) -> list[dict]:
    lookback = round(cfg.lookback_days * DAY_MS)
    newest = _newest(state, person)
    kept = [tp for tp in state.touches if tp["id"] in person["ids"] and tp["ts"] > newest - lookback]
    kept = sorted(kept, key=lambda tp: (tp["ts"], tp["order"]))[-cfg.cap:]
    return [tp for tp in kept if ts - lookback < tp["ts"] <= ts]


def _conversion_rows(state, cfg, person, event) -> list[dict]:
    ts = event["ts_ms"]
    journey = _journey(state, cfg, person, ts)
    who = min(person["ids"], key=state.registered.__getitem__)
    rows = []
    for model in MODELS:
        if journey:
            weights, fallback = model_weights(model, journey, ts, cfg)
            touches = [(tp["channel"], tp["campaign"], tp["ts"], tp["link"]) for tp in journey]
        else:  # direct: wholly to "(direct)"; a fitted model without a fit still says it fell back
            weights, touches = [1.0], [("(direct)", None, None, "deterministic")]
            fallback = model in ("markov", "data_driven") and model not in cfg.channel_values
        for w, (channel, campaign, touch_ts, link) in zip(weights, touches, strict=True):
            rows.append({
                "tenant_id": event["tenant_id"], "conversion_id": event["event_id"], "person": who,
                "model": model, "channel": channel, "campaign_id": campaign, "touch_ts_ms": touch_ts,
                "conversion_ts_ms": ts, "weight": w, "conversions_credit": w * event["conversions"],
                "revenue_credit": w * event["revenue"], "fallback": fallback,
                "partition": event["partition"], "offset": event["offset"]}
                | ({"link": link} if cfg.matching is not None else {}))
    return rows


def model_weights(model, journey, ts, cfg) -> tuple[list[float], bool]:
    """(weights summing to 1, fell back to linear) of one journey of n >= 1 touchpoints."""
    n = len(journey)
    if model == "first_touch":
        return [1.0] + [0.0] * (n - 1), False
    if model == "last_touch":
        return [0.0] * (n - 1) + [1.0], False
    if model == "linear":
        return [1.0 / n] * n, False
    if model == "position_based":
        if n <= 2:
            return [1.0 / n] * n, False
        first, last = cfg.position_first, cfg.position_last
        return [first] + [(1.0 - first - last) / (n - 2)] * (n - 2) + [last], False
    if model == "time_decay":
        half_life = cfg.half_life_days * DAY_MS
        terms = [2.0 ** (-(ts - tp["ts"]) / half_life) for tp in journey]
        return [t / sum(terms) for t in terms], False
    values = cfg.channel_values.get(model)
    channels = [tp["channel"] for tp in journey]
    total = sum(values.get(ch, 0.0) for ch in set(channels)) if values is not None else 0.0
    if total <= 0:
        return [1.0 / n] * n, True
    return [values.get(ch, 0.0) / total / channels.count(ch) for ch in channels], False

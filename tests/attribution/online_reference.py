"""Plain-Python reference for the online attribution engine, written from the event contract's
"Identity and consent semantics" and "Attribution semantics", one event at a time, with lists, sets
and dicts (no union-find, no sorted state, no eviction bookkeeping).

Events are dicts with the EventColumns names (`event_type` as a name, `consent_analytics` -1/0/1).
Besides the contract, it states the engine's two documented bounds declaratively, per conversion:
a person's touchpoints count only if their timestamp is after (the person's newest touchpoint or
conversion time so far - lookback), and only the `cap` latest (by timestamp, then processing order).
A person's id is its identity registered first (`field:value`).
"""

from __future__ import annotations

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


@dataclass
class _State:
    persons: list = field(default_factory=list)  # {"ids": set, "consent": (order, granted) or None}
    registered: dict = field(default_factory=dict)  # identity -> registration order
    touches: list = field(default_factory=list)  # allowed touchpoints: {"id", "ts", "order", "channel", "campaign"}
    times: list = field(default_factory=list)  # (one identity, ts) of allowed touchpoints and conversions
    high: dict = field(default_factory=dict)  # partition -> highest offset seen


def reference_credits(events: list[dict], cfg: RefConfig) -> list[dict]:
    """Credit rows (the engine's columns) of the conversions among `events`, in processing order."""
    state, rows = _State(), []
    for order, event in enumerate(events):
        part, offset = event["partition"], event["offset"]
        if offset <= state.high.get(part, -1):
            continue  # replayed
        state.high[part] = offset
        ids = [f"{name}:{event[name]}" for name in IDENTITY_FIELDS if event[name] is not None]
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
    if granting:
        person["consent"] = (order, True)
    elif kind == "touchpoint":
        state.touches.append({"id": ids[0], "ts": event["ts_ms"], "order": order,
                              "channel": event["source"], "campaign": event["campaign_id"]})
        state.times.append((ids[0], event["ts_ms"]))
    elif kind == "conversion":
        state.times.append((ids[0], event["ts_ms"]))
        rows.extend(_conversion_rows(state, cfg, person, event))


def _new_person(state, identity) -> dict:
    state.registered[identity] = len(state.registered)
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


def _journey(state, cfg, person, ts) -> list[dict]:
    """The touchpoints credited to a conversion of `person` at `ts`, in journey order."""
    lookback = round(cfg.lookback_days * DAY_MS)
    newest = max(t for identity, t in state.times if identity in person["ids"])
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
            touches = [(tp["channel"], tp["campaign"], tp["ts"]) for tp in journey]
        else:  # direct: wholly to "(direct)"; a fitted model without a fit still says it fell back
            weights, touches = [1.0], [("(direct)", None, None)]
            fallback = model in ("markov", "data_driven") and model not in cfg.channel_values
        for w, (channel, campaign, touch_ts) in zip(weights, touches, strict=True):
            rows.append({
                "tenant_id": event["tenant_id"], "conversion_id": event["event_id"], "person": who,
                "model": model, "channel": channel, "campaign_id": campaign, "touch_ts_ms": touch_ts,
                "conversion_ts_ms": ts, "weight": w, "conversions_credit": w * event["conversions"],
                "revenue_credit": w * event["revenue"], "fallback": fallback,
                "partition": event["partition"], "offset": event["offset"]})
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

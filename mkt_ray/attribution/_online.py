"""Online attribution for one tenant shard: events in processing order in, credit rows out.

Per batch: identity strings become integer slots (one compiled hash-table call per identity field,
`_keys.py`), channels and campaigns codes the same way, then one Numba pass (`_walk.py`) applies the
events in order (links, consent, touchpoint lists, bounds) and returns the conversions' journeys in CSR
form, which the rule kernels credit in one call per model. Measured with `benchmarks/attribution.py`
(200k generated events, batches of 10k, CPU time on a shared 2-core machine): ~4.5k conversions/s for
the former per-event Python walk, ~33k/s now, beside ~27k/s for the plain-Python baseline loop.

The contract's "Identity and consent semantics" and "Attribution semantics", in processing order:
- consent: the latest `consent` event of a person rules (its processing order decides), else the
  tenant default (granted unless `consent_required`). Among the persons an event's ids belong to, the
  latest explicit consent rules, as it would for the person they are about to become. An event of a
  person without consent, or carrying `consent.analytics: false`, links nothing, enters no journey and
  is not attributed; a `consent` event with `analytics: false` records the opt-out (and links nothing).
  Touchpoints stored before an opt-out stay and count again after an opt-in ("from now on").
- a conversion credits the person's stored touchpoints (all processed before it) with timestamps in
  (t - lookback, t], ordered by timestamp then processing order; with none, `(direct)` gets it all.
- two bounds keep a person's state small: touchpoints at or before (the person's newest touchpoint or
  conversion time - lookback) are dropped, and only the `max_touchpoints_per_person` latest (by
  timestamp, then processing order) are kept. Both only matter to late conversions and very long
  journeys; the kept set does not depend on when evictions ran, so chunked apply == one shot.
- markov / data_driven use per-channel values fitted offline (`set_channel_values`); before a fit, or
  when no channel on the path has a positive value, they fall back to linear with `fallback` = true.
- `apply` is idempotent per (partition, offset): an event at or below its partition's high-water
  offset was applied before and is skipped.
- probabilistic matching (per tenant, off by default; `_matching.py`): persons sharing device signals
  in `metadata` are linked without being merged, and a conversion also credits the linked persons'
  touchpoints (rows then carry `link`, LINKED_CREDIT_SCHEMA).
- `forget(identity)` (right to be forgotten) drops the person of `identity`: every identity linked to
  it, its touchpoints and consent record. Each removed identity keeps a tombstone (`forgotten`:
  identity -> {partition: offset}, the high water at the time unless given): an event carrying it at
  or below that offset of its partition is ignored, so a replay of the same offsets (a rebuild, a
  restore from an older checkpoint with the tombstones re-applied) never links it again; later events
  are new data and count as usual.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
import numpy as np
import pyarrow as pa

from mkt_ray.attribution._identity import IdentityGraph
from mkt_ray.attribution._keys import SlotTable, encode_keys
from mkt_ray.attribution._touches import DAY_MS, DIRECT
from mkt_ray.attribution._walk import Journeys, walk_events
from mkt_ray.contract import (
    EVENT_TYPE_CODE,
    IDENTITY_FIELDS,
    USER_LEVEL_TYPES,
    BatchDecoder,
    EventColumns,
    is_none,
)
from mkt_ray.kernels import RULE_MODELS, rule_credits
from mkt_ray.settings import ProbabilisticMatching, TenantConfig

FITTED_MODELS: tuple[str, ...] = ("markov", "data_driven")
ONLINE_MODELS: tuple[str, ...] = (*RULE_MODELS, *FITTED_MODELS)
CREDIT_SCHEMA = pa.schema([
    ("tenant_id", pa.string()), ("conversion_id", pa.string()), ("person", pa.string()),
    ("model", pa.string()), ("channel", pa.string()), ("campaign_id", pa.string()),
    ("touch_ts_ms", pa.int64()),  # null for (direct)
    ("conversion_ts_ms", pa.int64()), ("weight", pa.float64()), ("conversions_credit", pa.float64()),
    ("revenue_credit", pa.float64()), ("fallback", pa.bool_()), ("partition", pa.int32()), ("offset", pa.int64()),
])

# with probabilistic matching on, each row also says how its touchpoint joined the journey
LINKED_CREDIT_SCHEMA = CREDIT_SCHEMA.append(pa.field("link", pa.string()))  # deterministic | probabilistic

_TOUCH, _CONVERSION, _CONSENT = (EVENT_TYPE_CODE[t] for t in ("touchpoint", "conversion", "consent"))
_USER_LEVEL = np.array(sorted(EVENT_TYPE_CODE[t] for t in USER_LEVEL_TYPES), np.int8)


@dataclass(frozen=True, slots=True)
class Forgotten:
    """What `forget` removed: the person's identities and touchpoints, and the tombstone's offsets."""

    identities: list[str]
    touchpoints: int
    through: dict[int, int]  # partition -> offset through which events carrying them are ignored


@dataclass(frozen=True, slots=True)
class _Walked:
    """One batch's conversions after the walk: batch rows, persons and their journeys (CSR)."""

    rows: np.ndarray  # position in the batch, per conversion
    persons: list[str | None]
    starts: np.ndarray
    touch_ts: np.ndarray
    channels: np.ndarray  # codes into the engine's channel names
    campaigns: np.ndarray  # codes into the engine's campaign names, -1 = none
    direct: np.ndarray  # per conversion: no touchpoint in the window
    probabilistic: np.ndarray  # per touch: shared through a probabilistic link


class TenantAttribution:
    """Identity graph, consent and bounded touchpoint sequences of one tenant; picklable.

    `apply(events)` takes one tenant's valid events in processing order and returns the credit rows
    (CREDIT_SCHEMA; LINKED_CREDIT_SCHEMA with probabilistic matching on) of the conversions among them:
    one per conversion x touchpoint x model.
    """

    def __init__(self, config: TenantConfig, max_touchpoints_per_person: int = 200) -> None:
        if max_touchpoints_per_person < 1:
            raise ValueError(f"max_touchpoints_per_person must be at least 1, got {max_touchpoints_per_person}")
        self.config = config
        self.max_touchpoints = int(max_touchpoints_per_person)
        self.lookback_ms = round(config.lookback_days * DAY_MS)
        self.graph = IdentityGraph()
        self.journeys = Journeys()
        self.high_water: dict[int, int] = {}  # partition -> highest offset applied
        self.channel_values: dict[str, dict[str, float]] = {}  # fitted model -> channel -> value
        self.tenant_id: str | None = None
        self._channels = SlotTable()  # channel -> code (touchpoint slots hold codes)
        self._direct = int(_intern_column(self._channels, np.array([DIRECT], object))[0])
        self._campaigns = SlotTable()
        self._tombstones: dict[str, dict[str, dict[int, int]]] = {}  # identity field -> value -> through
        matching = config.probabilistic_matching
        self._signal_keys = list(matching.signals) if matching.enabled else []
        self._signal_values = SlotTable()  # `key:value` of signals -> code
        self.journeys.signals = len(self._signal_keys)

    def set_channel_values(self, model: str, values: Mapping[str, float]) -> None:
        """Install a fitted model's per-channel values (finite, >= 0) for the conversions applied next."""
        if model not in FITTED_MODELS:
            raise ValueError(f"channel values are for {' or '.join(FITTED_MODELS)}, not {model!r}")
        bad = {ch: v for ch, v in values.items() if not (math.isfinite(v) and v >= 0)}
        if bad:
            raise ValueError(f"{model} channel values must be finite and >= 0 (clamp before setting); got {bad}")
        self.channel_values[model] = {str(ch): float(v) for ch, v in values.items()}

    def apply(self, events: EventColumns) -> pa.Table:
        """Walk the events in order, updating state; the credit rows of the conversions among them."""
        self._check_tenant(events["tenant_id"])  # before the high water moves: a refused batch changes nothing
        fresh = self._fresh(events["partition"], events["offset"])
        present = [~is_none(events[name]) for name in IDENTITY_FIELDS]
        walk = fresh & np.isin(events["event_type"], _USER_LEVEL) & np.logical_or.reduce(present)
        if self._tombstones:
            walk &= ~self._replayed_forgotten(events)
        rows = np.flatnonzero(walk)
        walked = self._walk(events, rows, [mask[rows] for mask in present])
        return self._credits(events, walked)

    @property
    def forgotten(self) -> dict[str, dict[int, int]]:
        """Tombstones: identity -> {partition: offset}; its events at or below these offsets are ignored."""
        return {f"{name}:{value}": dict(through) for name, values in self._tombstones.items()
                for value, through in values.items()}

    def forget(self, identity: str, through: Mapping[int, int] | None = None) -> list[str]:
        """Right to be forgotten: drop the person of `identity` (touchpoints, consent, links); its ids."""
        return self.forget_person(identity, through).identities

    def forget_person(self, identity: str, through: Mapping[int, int] | None = None) -> Forgotten:
        """`forget`, saying what went: identities, touchpoints, and the tombstone's offsets.

        `through` (partition -> offset) bounds the tombstone; by default the offsets applied so far.
        Give the recorded bounds when re-applying a forget to state restored from before it.
        """
        name, sep, _ = identity.partition(":")
        if not sep or name not in IDENTITY_FIELDS:
            raise ValueError(f"identity {identity!r} must be 'field:value' with field one of {', '.join(IDENTITY_FIELDS)}")
        touchpoints = self.journeys.clear(self.graph.person_slots(identity))
        removed = self.graph.forget(identity)
        bound = {int(p): int(o) for p, o in (self.high_water if through is None else through).items()}
        for each in removed or [identity]:
            field, _, value = each.partition(":")
            tomb = self._tombstones.setdefault(field, {}).setdefault(value, {})
            for part, offset in bound.items():
                tomb[part] = max(offset, tomb.get(part, -1))
        return Forgotten(removed, touchpoints, bound)

    def _replayed_forgotten(self, events: EventColumns) -> np.ndarray:
        """Events carrying a tombstoned identity at or below its tombstone's offset on their partition."""
        hit = np.zeros(len(events), bool)
        for field, values in self._tombstones.items():
            column = events[field]
            for value in set(column.tolist()) & values.keys():
                at = np.flatnonzero(column == value)
                bounds = np.array([values[value].get(p, -1) for p in events["partition"][at].tolist()], np.int64)
                hit[at[events["offset"][at] <= bounds]] = True
        return hit

    def _fresh(self, partition: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """Events above their partition's running high-water offset; advances the high water."""
        keep = np.ones(len(offset), bool)
        for part in np.unique(partition).tolist():
            at = np.flatnonzero(partition == part)
            offs = offset[at]
            seen = np.maximum.accumulate(np.concatenate(([self.high_water.get(part, -1)], offs)))
            keep[at] = offs > seen[:-1]
            self.high_water[part] = int(seen[-1])
        return keep

    def _check_tenant(self, tenants: np.ndarray) -> None:
        if len(tenants) and tenants[0] == self.tenant_id and not np.count_nonzero(tenants != self.tenant_id):
            return
        found = set(tenants.tolist()) | ({self.tenant_id} if self.tenant_id is not None else set())
        if len(found) > 1:
            raise ValueError(f"TenantAttribution holds one tenant's state; got events of {sorted(found)}")
        if found:
            self.tenant_id = found.pop()

    def _walk(self, events: EventColumns, rows: np.ndarray, present: list[np.ndarray]) -> _Walked:
        """Identity strings to slots once per distinct identity, then the compiled walk over the rows."""
        ids = np.full((len(rows), len(IDENTITY_FIELDS)), -1, np.int64)
        for f, (name, mask) in enumerate(zip(IDENTITY_FIELDS, present, strict=True)):
            if mask.any():
                ids[mask, f] = self.graph.codes(name, events[name][rows[mask]].tolist())
        kind = events["event_type"][rows]
        touches = rows[kind == _TOUCH]
        channel, campaign = np.full(len(rows), -1, np.int64), np.full(len(rows), -1, np.int64)
        channel[kind == _TOUCH] = _intern_column(self._channels, events["source"][touches])
        campaign[kind == _TOUCH] = _intern_column(self._campaigns, events["campaign_id"][touches])
        sig = self._signal_codes(events, rows)
        j, g = self.journeys, self.graph
        j.fit(g.capacity, len(touches), 2 * len(rows) if self._signal_keys else 0, self._signal_values.capacity)
        matching = self.config.probabilistic_matching
        weights = np.array([matching.signals[key] for key in self._signal_keys], np.float64)
        codes = np.array([_TOUCH, _CONVERSION, _CONSENT, self._direct], np.int64)
        conv, roots, starts, touch_ts, channels, campaigns, direct, probabilistic = walk_events(
            kind, events["consent_analytics"][rows], events["ts_ms"][rows], channel, campaign, ids, g.parent, g.age,
            g.clock, j.consent_seq, j.consent_ok, j.newest, j.head, j.tail, j.count, j.t_ts, j.t_seq, j.t_channel,
            j.t_campaign, j.t_next, j.t_free, j.counters, not self.config.consent_required, self.lookback_ms,
            self.max_touchpoints, codes, sig, weights, matching.threshold, round(matching.max_gap_s * 1000), j.plink,
            j.obs_sig, j.last, j.lpool, j.l_free, j.l_counters)
        persons = g.names_of(roots)
        g.release()
        return _Walked(rows[conv], persons, starts, touch_ts, channels, campaigns, direct, probabilistic)

    def _signal_codes(self, events: EventColumns, rows: np.ndarray) -> np.ndarray:
        """Per walked event, the codes of its signal values (`metadata` keys of probabilistic matching)."""
        sig = np.full((len(rows), len(self._signal_keys)), -1, np.int64)
        if not self._signal_keys:
            return sig
        metadata = events["metadata"][rows]
        at = np.flatnonzero(metadata.astype(bool))
        decoded = [msgspec.json.decode(text) for text in metadata[at].tolist()]
        for k, key in enumerate(self._signal_keys):
            values = [m.get(key) if isinstance(m, dict) else None for m in decoded]
            where = [n for n, value in enumerate(values) if isinstance(value, str) and value]
            if where:
                sig[at[where], k] = self._signal_values.intern(*encode_keys(f"{key}:", [values[n] for n in where]))[0]
        return sig

    def _credits(self, events: EventColumns, walked: _Walked) -> pa.Table:
        """One CSR `rule_credits` call per rule model over the batch's conversions, then the rows."""
        if not len(walked.rows):
            return (LINKED_CREDIT_SCHEMA if self._signal_keys else CREDIT_SCHEMA).empty_table()
        rows, starts = walked.rows, walked.starts
        conv_of = np.repeat(np.arange(len(rows)), np.diff(starts))
        conversions, revenue = events["conversions"][rows].astype(np.float64), events["revenue"][rows]
        cfg = self.config
        results = [(*rule_credits(code, starts, walked.touch_ts, events["ts_ms"][rows], conversions, revenue,
                                  cfg.half_life_days * DAY_MS, cfg.position_first, cfg.position_last),
                    np.zeros(len(walked.touch_ts), bool)) for code in range(len(RULE_MODELS))]
        used, codes = np.unique(walked.channels, return_inverse=True)
        names = _names(self._channels, used)
        for model in FITTED_MODELS:
            weight, fallback = _fitted_weights(self.channel_values.get(model), codes, names, conv_of,
                                               walked.direct, linear=results[RULE_MODELS.index("linear")][0])
            results.append((weight, weight * conversions[conv_of], weight * revenue[conv_of], fallback))
        channels = np.array(names, object)[codes]
        used, codes = np.unique(walked.campaigns, return_inverse=True)
        campaigns = np.array(_names(self._campaigns, used), object)[codes]
        table = _credit_rows(self.tenant_id, events, walked, channels, campaigns, conv_of, results)
        if not self._signal_keys:
            return table
        link = np.where(np.tile(walked.probabilistic, len(results)), "probabilistic", "deterministic")
        return table.append_column(LINKED_CREDIT_SCHEMA.field("link"), pa.array(link, pa.string()))


def warm_up() -> None:
    """Compile (or load from numba's on-disk cache) the engine's kernels on a tiny batch.

    A cold compile took ~23 s on the shared 2-core machine (a cache load ~0.3 s): an ingest member calls
    this before joining its consumer group, so no event's latency pays for it.
    """
    now = int(time.time() * 1000)
    stamp = datetime.fromtimestamp(now / 1000 - 60, UTC).isoformat().replace("+00:00", "Z")
    signals = {"ip_prefix_sha256": "p", "ua_family": "f"}
    steps = [("touchpoint", {"anonymous_id": "a1", "metadata": signals}), ("identify", {"anonymous_id": "a1", "user_id": "u1"}),
             ("touchpoint", {"anonymous_id": "a2", "metadata": signals}), ("consent", {"device_id": "d1", "consent": {"analytics": False}}),
             ("touchpoint", {"anonymous_id": "a3", "consent": {"analytics": False}}),
             ("conversion", {"user_id": "u1", "metadata": signals})]
    lines = [json.dumps({"schema_version": 1, "event_id": f"w{n}", "tenant_id": "warm-up", "event_type": kind,
                         "timestamp": stamp, **({"source": "s", "campaign_id": "c"} if kind == "touchpoint" else {}),
                         **fields}).encode() for n, (kind, fields) in enumerate(steps)]
    engine = TenantAttribution(TenantConfig(probabilistic_matching=ProbabilisticMatching(enabled=True)))
    engine.apply(BatchDecoder(["warm-up"]).decode(lines, now_ms=now).events)
    engine.forget_person("user_id:u1")


def _intern_column(table: SlotTable, values: np.ndarray) -> np.ndarray:
    """Codes of a text column's values in a growing table (None -> -1)."""
    codes = np.full(len(values), -1, np.int64)
    present = values.astype(bool)  # an alias may map a source to "": no channel
    if present.any():
        codes[present] = table.intern(*encode_keys("", values[present].tolist()))[0]
    return codes


def _names(table: SlotTable, codes: np.ndarray) -> list[str | None]:
    """The texts of sorted codes, -1 (only ever first) -> None."""
    absent = int(np.count_nonzero(codes < 0))
    return [None] * absent + table.texts(codes[absent:])


def _fitted_weights(values: dict[str, float] | None, codes: np.ndarray, names: list[str], conv_of: np.ndarray,
                    direct: np.ndarray, linear: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weights of a fitted model: the path's channel values normalised to 1, shared equally among a
    channel's touchpoints. Linear (fallback) without a fit or without a positive value on the path;
    a direct conversion is wholly `(direct)` either way and falls back only without a fit."""
    if values is None:
        return linear, np.ones(len(codes), bool)
    value = np.array([values.get(name, 0.0) for name in names], np.float64)[codes]
    _, group, counts = np.unique(conv_of * len(names) + codes, return_inverse=True, return_counts=True)
    share = value / counts[group]
    total = np.bincount(conv_of, weights=share, minlength=len(direct))
    fitted = total > 0
    weight = np.where(fitted[conv_of], share / np.where(fitted, total, 1.0)[conv_of], linear)
    return weight, (~fitted & ~direct)[conv_of]


def _credit_rows(tenant_id: str | None, events: EventColumns, walked: _Walked, channels: np.ndarray,
                 campaigns: np.ndarray, conv_of: np.ndarray, results: list[tuple[np.ndarray, ...]]) -> pa.Table:
    """Rows model by model: the per-touch columns are built once and taken once per model."""
    n_touch, n_models = len(conv_of), len(results)
    tile = np.tile(np.arange(n_touch), n_models)
    conv = conv_of[tile]
    rows = walked.rows
    touch_ts = pa.array(walked.touch_ts, pa.int64(), mask=walked.direct[conv_of])
    model = pa.DictionaryArray.from_arrays(np.repeat(np.arange(n_models, dtype=np.int8), n_touch),
                                           pa.array(ONLINE_MODELS)).cast(pa.string())
    weight, conversions, revenue, fallback = (np.concatenate(part) for part in zip(*results, strict=True))
    columns = [
        pa.array([tenant_id], pa.string()).take(np.zeros(len(tile), np.int64)),
        pa.array(events["event_id"][rows], pa.string()).take(conv),
        pa.array(walked.persons, pa.string()).take(conv),
        model,
        pa.array(channels, pa.string()).take(tile),
        pa.array(campaigns, pa.string()).take(tile),
        touch_ts.take(tile),
        events["ts_ms"][rows][conv], weight, conversions, revenue, fallback,
        events["partition"][rows][conv], events["offset"][rows][conv],
    ]
    return pa.Table.from_arrays(columns, schema=CREDIT_SCHEMA)

"""Journeys, converting and non-converting, from one tenant's raw events, by the platform's own engine.

The journeys are built by `TenantAttribution`, the engine that credits conversions online, so training
sees exactly the stitching, consent and lookback the shards apply (the contract's "Identity and consent
semantics" and "Attribution semantics"), with the tenant's own options (lookback, consent default):
- the raw rows are replayed in processing order, (partition, offset);
- a converting journey is one conversion with the touchpoints the engine credited to it (its lookback
  window); a conversion with none is a direct journey (no touchpoints);
- a non-converting journey is what is left of a person at the end of the data: the engine is asked to
  credit one probe conversion per identity at the data's last event time, after every real event, and
  the touchpoints a real conversion already credited are taken out. What is left is the person's
  touchpoints within one lookback of the end that no conversion credited (older ones the online engine
  has dropped too). Probes go through the same identity graph, so a person's ids give one journey, and
  an opted-out person gives none.

Output: a `Journeys` table in CSR form (touches of journey j at starts[j]:starts[j+1], in credit order).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mkt_ray.attribution import TenantAttribution
from mkt_ray.contract import EVENT_TYPE_CODE, IDENTITY_FIELDS, EventColumns, arrow_schema
from mkt_ray.settings import TenantConfig

JOURNEY_SCHEMA = pa.schema([
    ("journey", pa.int64()), ("converted", pa.bool_()), ("end_ms", pa.int64()),
    ("conversions", pa.float64()), ("revenue", pa.float64()),
    ("channels", pa.list_(pa.string())), ("touch_ts_ms", pa.list_(pa.int64())),
])
_CONVERSION = EVENT_TYPE_CODE["conversion"]
_PROBE_MODEL = "linear"  # one credit row per touchpoint, in journey order
_WHOLE_MODEL = "first_touch"


@dataclass(frozen=True)
class Journeys:
    """Journeys of one tenant: per journey a label and time, per touchpoint a channel and time (CSR)."""

    converted: np.ndarray  # bool[J]
    end_ms: np.ndarray  # int64[J]: conversion time, or the last touchpoint's time when not converting
    conversions: np.ndarray  # float64[J]: the conversion's count (0 when not converting)
    revenue: np.ndarray  # float64[J]
    starts: np.ndarray  # int64[J + 1]
    channels: np.ndarray  # object[T]: channel name per touchpoint
    touch_ts_ms: np.ndarray  # int64[T]

    def __len__(self) -> int:
        return len(self.converted)

    def to_arrow(self, first_id: int = 0) -> pa.Table:
        offsets = pa.array(self.starts.astype(np.int32))
        return pa.Table.from_arrays([
            pa.array(np.arange(first_id, first_id + len(self), dtype=np.int64)), pa.array(self.converted),
            pa.array(self.end_ms), pa.array(self.conversions), pa.array(self.revenue),
            pa.ListArray.from_arrays(offsets, pa.array(self.channels, pa.string())),
            pa.ListArray.from_arrays(offsets, pa.array(self.touch_ts_ms, pa.int64())),
        ], schema=JOURNEY_SCHEMA)

    @classmethod
    def from_arrow(cls, table: pa.Table) -> Journeys:
        channels = table["channels"].combine_chunks()
        ts = table["touch_ts_ms"].combine_chunks()
        return cls(table["converted"].to_numpy(zero_copy_only=False), table["end_ms"].to_numpy(),
                   table["conversions"].to_numpy(), table["revenue"].to_numpy(),
                   channels.offsets.to_numpy().astype(np.int64),
                   channels.values.to_numpy(zero_copy_only=False), ts.values.to_numpy())


def events_from_raw(table: pa.Table) -> EventColumns:
    """Raw-store rows (any order) as `EventColumns` in processing order, (partition, offset)."""
    table = table.sort_by([("partition", "ascending"), ("offset", "ascending")])
    data: dict[str, np.ndarray] = {}
    for field in arrow_schema():
        column = table[field.name]
        if field.name == "event_type":
            names = column.cast(pa.string()).to_numpy(zero_copy_only=False)
            data[field.name] = np.fromiter(map(EVENT_TYPE_CODE.__getitem__, names), np.int8, len(names))
        elif pa.types.is_string(field.type):
            data[field.name] = column.to_numpy(zero_copy_only=False).astype(object)
        else:
            data[field.name] = column.to_numpy(zero_copy_only=False).astype(field.type.to_pandas_dtype())
    return EventColumns(data)


def build_journeys(raw: pa.Table, config: TenantConfig) -> Journeys:
    """Every journey of one tenant's raw rows (see the module docstring)."""
    events = events_from_raw(raw)
    if len(events) == 0:
        return _from_parts([], [], [], [], [])
    engine = TenantAttribution(config)
    rows = engine.apply(events)
    credits = rows.filter(pc.equal(rows["model"], _PROBE_MODEL))
    # first_touch credits the whole conversion to one row, 0 elsewhere: its per-conversion sums are exact
    whole = rows.filter(pc.equal(rows["model"], _WHOLE_MODEL))
    probes = _probe_events(events)
    left = engine.apply(probes)
    left = left.filter(pc.equal(left["model"], _PROBE_MODEL))
    return _assemble(engine, credits, whole, left)


def _probe_events(events: EventColumns) -> EventColumns:
    """One conversion per identity seen, at the data's last event time, after every real event."""
    identities = sorted({(name, value) for name in IDENTITY_FIELDS
                         for value in events[name].tolist() if value is not None})
    n = len(identities)
    last = len(events) - 1
    data: dict[str, np.ndarray] = {}
    for name, column in events.data.items():
        data[name] = np.repeat(column[last:], n) if column.dtype != object else np.full(n, None, object)
    for name in ("impressions", "clicks", "conversions", "cost", "revenue"):
        data[name] = np.zeros(n, events[name].dtype)
    for name in ("consent_analytics", "consent_personalization", "consent_advertising"):
        data[name] = np.full(n, -1, np.int8)
    data["tenant_id"] = np.full(n, events["tenant_id"][0], object)
    data["event_type"] = np.full(n, _CONVERSION, np.int8)
    data["ts_ms"] = np.full(n, int(events["ts_ms"].max()), np.int64)
    data["event_id"] = np.array([f"probe-{i}" for i in range(n)], object)
    data["offset"] = int(events["offset"].max()) + 1 + np.arange(n, dtype=np.int64)
    data["partition"] = np.full(n, int(events["partition"][last]), np.int32)
    for i, (name, value) in enumerate(identities):
        data[name][i] = value
    return EventColumns(data)


def _assemble(engine: TenantAttribution, credits: pa.Table, whole: pa.Table, left: pa.Table) -> Journeys:
    """Converting journeys from the real credit rows, then per person the probe's uncredited touchpoints."""
    conv_offset = credits["offset"].to_numpy()
    direct = credits["touch_ts_ms"].is_null().to_numpy(zero_copy_only=False)
    touch_ts = credits["touch_ts_ms"].fill_null(0).to_numpy()
    channels = credits["channel"].to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.r_[True, conv_offset[1:] != conv_offset[:-1]]) if len(conv_offset) else np.zeros(0, int)
    conv_rows = starts.tolist()
    keep = ~direct
    credited = {(engine.graph.find(p), ts, ch) for p, ts, ch, k in zip(
        credits["person"].to_pylist(), touch_ts.tolist(), channels.tolist(), keep.tolist(), strict=True) if k}
    ends = [*conv_rows[1:], len(conv_offset)]
    journeys = [(channels[a:b][keep[a:b]].tolist(), touch_ts[a:b][keep[a:b]].tolist())
                for a, b in zip(conv_rows, ends, strict=True)]
    converted = [True] * len(journeys)
    end_ms = credits["conversion_ts_ms"].to_numpy()[starts].tolist() if len(starts) else []
    counts = whole["conversions_credit"].to_numpy()
    values = whole["revenue_credit"].to_numpy()
    totals = np.add.reduceat(counts, starts).tolist() if len(starts) else []
    revenue = np.add.reduceat(values, starts).tolist() if len(starts) else []
    for person, rows in _first_probe_per_person(left).items():
        path = [(ch, ts) for ch, ts in rows if (person, ts, ch) not in credited]
        if path:
            journeys.append(([ch for ch, _ in path], [ts for _, ts in path]))
            converted.append(False)
            end_ms.append(path[-1][1])
            totals.append(0.0)
            revenue.append(0.0)
    return _from_parts(journeys, converted, end_ms, totals, revenue)


def _first_probe_per_person(left: pa.Table) -> dict[str, list[tuple[str, int]]]:
    """person -> [(channel, ts)] of the first probe of each person that found touchpoints."""
    out: dict[str, list[tuple[str, int]]] = {}
    seen_offset: dict[str, int] = {}
    for person, offset, channel, ts in zip(left["person"].to_pylist(), left["offset"].to_pylist(),
                                           left["channel"].to_pylist(), left["touch_ts_ms"].to_pylist(), strict=True):
        if ts is None or seen_offset.setdefault(person, offset) != offset:
            continue
        out.setdefault(person, []).append((channel, ts))
    return out


def _from_parts(journeys: list, converted: list, end_ms: list, conversions: list, revenue: list) -> Journeys:
    lengths = np.fromiter((len(ch) for ch, _ in journeys), np.int64, len(journeys))
    return Journeys(
        np.asarray(converted, bool), np.asarray(end_ms, np.int64), np.asarray(conversions, np.float64),
        np.asarray(revenue, np.float64), np.concatenate(([0], np.cumsum(lengths))).astype(np.int64),
        np.array([ch for chs, _ in journeys for ch in chs], object),
        np.array([ts for _, tss in journeys for ts in tss], np.int64),
    )

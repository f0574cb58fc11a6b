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

Persons never interact (without probabilistic matching), so the replay is split in two phases that
give the same journeys as one pass over all events: an identity pass (`split_events`: every identity
value gets its rank in the sorted list of identities, the compiled union-find of the engine joins the
ids that appear on one event, and each connected component, with its events in processing order and
its probes, goes to one of N groups), then one engine per group (`build_group`, run in parallel by
the training job). A component holds every id its person can ever link (consent only ever links less),
the probes keep the time and offsets of the one-pass replay, and `merge_groups` restores the one-pass
order (conversions by (partition, offset), then non-converting journeys by probe). With probabilistic
matching on, signals link persons across components: everything is one group.

Output: a `Journeys` table in CSR form (touches of journey j at starts[j]:starts[j+1], in credit order).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mkt_ray.attribution import TenantAttribution
from mkt_ray.attribution._unionfind import find_root, link
from mkt_ray.contract import (
    EVENT_TYPE_CODE,
    EVENT_TYPES,
    IDENTITY_FIELDS,
    USER_LEVEL_TYPES,
    EventColumns,
    arrow_schema,
)
from mkt_ray.kernels._jit import jit
from mkt_ray.settings import TenantConfig

JOURNEY_SCHEMA = pa.schema([
    ("journey", pa.int64()), ("converted", pa.bool_()), ("end_ms", pa.int64()),
    ("conversions", pa.float64()), ("revenue", pa.float64()),
    ("channels", pa.list_(pa.string())), ("touch_ts_ms", pa.list_(pa.int64())),
])
_CONVERSION = EVENT_TYPE_CODE["conversion"]
_PROBE_MODEL = "linear"  # one credit row per touchpoint, in journey order
_WHOLE_MODEL = "first_touch"
_ID_ORDER = tuple(sorted(IDENTITY_FIELDS))  # probes go in (field, value) order
# the raw columns the engine reads for journeys; the others are filled with absent values
ENGINE_COLUMNS = (*IDENTITY_FIELDS, "tenant_id", "event_type", "ts_ms", "source", "campaign_id", "consent_analytics",
                  "conversions", "revenue", "partition", "offset")
# The engine's cost per event grows with the batch (its credit rows are gathered per model from arrays of
# the whole batch): 5.2M events took 29 CPU s in 2 groups, 12 s in 16 groups of about 330k.
GROUP_EVENTS = 300_000
_PROBES_AFTER = np.int64(1) << 40  # order key of non-converting journeys: after every partition number


def input_columns(config: TenantConfig) -> list[str]:
    """The raw columns journeys need (`metadata` only for probabilistic matching's signals)."""
    return [*ENGINE_COLUMNS, *(["metadata"] if config.probabilistic_matching.enabled else [])]


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
        first = channels.offsets[0].as_py() if len(channels) else 0
        starts = channels.offsets.to_numpy().astype(np.int64)
        return cls(table["converted"].to_numpy(zero_copy_only=False), table["end_ms"].to_numpy(),
                   table["conversions"].to_numpy(), table["revenue"].to_numpy(), starts - first,
                   channels.flatten().to_numpy(zero_copy_only=False), ts.flatten().to_numpy())


@dataclass(frozen=True)
class EventGroup:
    """One group of persons: their events in processing order and their probes (see the module docstring)."""

    events: pa.Table
    probe_field: np.ndarray  # int8 per probe: index into _ID_ORDER
    probe_value: np.ndarray  # object per probe: the identity value
    probe_rank: np.ndarray  # int64 per probe: rank of (field, value) among all identities of the data
    probe_ts_ms: int  # the data's last event time
    probe_partition: int  # the partition of the last event
    probe_offset: int  # the first probe's offset: after every real event


@dataclass(frozen=True)
class GroupJourneys:
    """A group's journeys and where each goes in the one-pass order (lexicographic (major, minor))."""

    journeys: pa.Table
    major: np.ndarray
    minor: np.ndarray


def build_journeys(raw: pa.Table, config: TenantConfig) -> Journeys:
    """Every journey of one tenant's raw rows (see the module docstring), in this process."""
    groups = split_events(raw, config, group_count(raw.num_rows))
    return merge_groups([build_group(group, config) for group in groups])


def split_events(raw: pa.Table, config: TenantConfig, n_groups: int) -> list[EventGroup]:
    """The identity pass: raw rows (any order, any columns of the raw schema) into at most `n_groups`
    groups of whole persons; groups without events are left out."""
    if raw.num_rows == 0:
        return []
    raw = raw.select([name for name in input_columns(config) if name in raw.column_names])
    order = pc.sort_indices(raw, [("partition", "ascending"), ("offset", "ascending")]).to_numpy()  # stable
    partition, offset = raw["partition"].to_numpy()[order], raw["offset"].to_numpy()[order]
    ranks, values = _identity_ranks(raw)  # rows in read order: components do not depend on it
    n_ids = sum(len(v) for v in values)
    probe_ts, probe_partition, probe_offset = int(pc.max(raw["ts_ms"]).as_py()), int(partition[-1]), int(offset.max()) + 1
    if config.probabilistic_matching.enabled:
        n_groups = 1
    group_of_id = _components(ranks, n_ids) % n_groups
    # the rows the engine walks: first seen on their partition, user-level, with an identity
    fresh = np.r_[True, (partition[1:] != partition[:-1]) | (offset[1:] != offset[:-1])] & (offset >= 0)
    user_level = pc.is_in(raw["event_type"].cast(pa.string()), pa.array(sorted(USER_LEVEL_TYPES))).to_numpy(
        zero_copy_only=False)[order]
    first_id = ranks.max(axis=1)[order]
    row_group = np.where(fresh & user_level & (first_id >= 0), group_of_id[np.maximum(first_id, 0)], -1)
    field_of_id = np.repeat(np.arange(len(_ID_ORDER), dtype=np.int8), [len(v) for v in values])
    first_rank = np.cumsum([0, *(len(v) for v in values)])
    by_group = np.argsort(row_group, kind="stable")  # each group's rows stay in processing order
    row_bounds = np.searchsorted(row_group[by_group], np.arange(n_groups + 1))
    ids_by_group = np.argsort(group_of_id, kind="stable")
    id_bounds = np.searchsorted(group_of_id[ids_by_group], np.arange(n_groups + 1))
    groups = []
    for g in range(n_groups):
        rows = order[by_group[row_bounds[g]:row_bounds[g + 1]]]
        if not len(rows):
            continue
        ids = ids_by_group[id_bounds[g]:id_bounds[g + 1]]
        fields = field_of_id[ids]
        probe_value = np.empty(len(ids), object)
        for f in range(len(_ID_ORDER)):
            at = fields == f
            probe_value[at] = values[f][ids[at] - first_rank[f]]
        groups.append(EventGroup(raw.take(rows), fields, probe_value, ids, probe_ts, probe_partition, probe_offset))
    return groups


def group_count(events: int, cpus: int = 1) -> int:
    """Groups for `events` rows: at least one per CPU, and about `GROUP_EVENTS` events each."""
    return max(cpus, -(-events // GROUP_EVENTS))


def _identity_ranks(raw: pa.Table) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per row and identity field, the rank of (field, value) among every identity of the rows (-1 =
    none), fields in `_ID_ORDER`; and per field its sorted distinct values."""
    ranks = np.full((raw.num_rows, len(_ID_ORDER)), -1, np.int64)
    values, base = [], 0
    for f, name in enumerate(_ID_ORDER):
        column = raw[name] if name in raw.column_names else pa.nulls(raw.num_rows, pa.string())
        distinct = pc.unique(column.drop_null())
        distinct = distinct.take(pc.sort_indices(distinct))  # UTF-8 byte order = code point order, as `sorted`
        index = pc.index_in(column, value_set=distinct).to_numpy(zero_copy_only=False)
        present = ~np.isnan(index)
        ranks[present, f] = base + index[present].astype(np.int64)
        values.append(distinct.to_numpy(zero_copy_only=False))
        base += len(distinct)
    return ranks, values


@jit
def _component_roots(ranks, n_ids):
    """Per identity rank, the root of its component: ids on one row are joined (the engine's union-find)."""
    parent = np.full(n_ids, -1, np.int64)
    age = np.zeros(n_ids, np.int64)
    clock = np.zeros(1, np.int64)
    for row in range(ranks.shape[0]):
        link(parent, age, clock, ranks[row])
    roots = np.empty(n_ids, np.int64)
    for node in range(n_ids):
        roots[node] = find_root(parent, node) if parent[node] >= 0 else node
    return roots


def _components(ranks: np.ndarray, n_ids: int) -> np.ndarray:
    return _component_roots(ranks, np.int64(n_ids)) if n_ids else np.zeros(0, np.int64)


def build_group(group: EventGroup, config: TenantConfig) -> GroupJourneys:
    """The journeys of one group by the platform's engine: its events, then its probes."""
    events = _event_columns(group.events)
    engine = TenantAttribution(config)
    rows = engine.apply(events)
    credits = rows.filter(pc.equal(rows["model"], _PROBE_MODEL))
    # first_touch credits the whole conversion to one row, 0 elsewhere: its per-conversion sums are exact
    whole = rows.filter(pc.equal(rows["model"], _WHOLE_MODEL))
    left = engine.apply(_probe_events(group, events))
    left = left.filter(pc.equal(left["model"], _PROBE_MODEL))
    return _assemble(engine, credits, whole, left)


def _event_columns(table: pa.Table) -> EventColumns:
    """Raw rows (in processing order) as the engine's `EventColumns`; columns not read are absent values."""
    n = table.num_rows
    data: dict[str, np.ndarray] = {}
    for field in arrow_schema():
        if field.name == "event_type":
            codes = pc.index_in(table["event_type"].cast(pa.string()), value_set=pa.array(EVENT_TYPES))
            if codes.null_count:
                raise ValueError(f"unknown event types in the raw rows: {pc.unique(table['event_type'].filter(codes.is_null()))}")
            data[field.name] = codes.to_numpy().astype(np.int8)
        elif field.name not in table.column_names:
            data[field.name] = (np.full(n, None, object) if pa.types.is_string(field.type)
                                else np.full(n, -1 if field.name.startswith("consent_") else 0, field.type.to_pandas_dtype()))
        elif pa.types.is_string(field.type):
            data[field.name] = table[field.name].to_numpy(zero_copy_only=False).astype(object)
        else:
            data[field.name] = table[field.name].to_numpy(zero_copy_only=False).astype(field.type.to_pandas_dtype())
    return EventColumns(data)


def _probe_events(group: EventGroup, events: EventColumns) -> EventColumns:
    """One conversion per identity of the group, at the data's last event time, after every real event."""
    n = len(group.probe_rank)
    data = {name: np.full(n, None, object) if column.dtype == object else np.zeros(n, column.dtype)
            for name, column in events.data.items()}
    for name in ("consent_analytics", "consent_personalization", "consent_advertising"):
        data[name] = np.full(n, -1, np.int8)
    data["tenant_id"] = np.full(n, events["tenant_id"][0], object)
    data["event_type"] = np.full(n, _CONVERSION, np.int8)
    data["ts_ms"] = np.full(n, group.probe_ts_ms, np.int64)
    data["event_id"] = np.array([f"probe-{i}" for i in group.probe_rank.tolist()], object)
    data["offset"] = group.probe_offset + group.probe_rank
    data["partition"] = np.full(n, group.probe_partition, np.int32)
    for f, name in enumerate(_ID_ORDER):
        at = group.probe_field == f
        data[name][at] = group.probe_value[at]
    return EventColumns(data)


def _assemble(engine: TenantAttribution, credits: pa.Table, whole: pa.Table, left: pa.Table) -> GroupJourneys:
    """Converting journeys from the real credit rows, then per person the probe's uncredited touchpoints."""
    partition, offset = credits["partition"].to_numpy(), credits["offset"].to_numpy()
    touched = credits["touch_ts_ms"].is_valid().to_numpy(zero_copy_only=False)
    touch_ts = credits["touch_ts_ms"].fill_null(0).to_numpy()
    starts = np.flatnonzero(np.r_[True, (offset[1:] != offset[:-1]) | (partition[1:] != partition[:-1])]) \
        if len(offset) else np.zeros(0, np.int64)
    n_conv = len(starts)
    conv_of = np.repeat(np.arange(n_conv), np.diff(np.r_[starts, len(offset)]))
    # who got credit, under the person's final id: (person, ts, channel) of every credited touchpoint
    persons = credits["person"].dictionary_encode().combine_chunks() if credits.num_rows else None
    final = pa.array([engine.graph.find(p) for p in persons.dictionary.to_pylist()], pa.string()).take(
        persons.indices) if persons is not None else pa.array([], pa.string())
    probe = left.filter(left["touch_ts_ms"].is_valid())
    probe_offset = probe["offset"].to_numpy()
    person_code, channel_code = _codes([final, probe["person"]]), _codes([credits["channel"], probe["channel"]])
    n_cred = credits.num_rows
    probe_person = person_code[n_cred:]
    # each person's first probe that found touchpoints (probes are credited in offset order)
    _, first = np.unique(probe_person, return_index=True)
    first_offset = np.zeros(int(probe_person.max()) + 1 if len(probe_person) else 0, np.int64)
    first_offset[probe_person[first]] = probe_offset[first]
    keep = probe_offset == first_offset[probe_person] if len(probe_person) else np.zeros(0, bool)
    probe_ts = probe["touch_ts_ms"].to_numpy()
    keep &= ~_credited(person_code[:n_cred][touched], touch_ts[touched], channel_code[:n_cred][touched],
                       probe_person, probe_ts, channel_code[n_cred:])
    kept_offset = probe_offset[keep]
    null_starts = np.flatnonzero(np.r_[True, kept_offset[1:] != kept_offset[:-1]]) if len(kept_offset) \
        else np.zeros(0, np.int64)
    null_ends = np.r_[null_starts[1:], len(kept_offset)] - 1
    kept_ts = probe_ts[keep]
    counts = whole["conversions_credit"].to_numpy()
    values = whole["revenue_credit"].to_numpy()
    lengths = np.r_[np.bincount(conv_of[touched], minlength=n_conv), np.diff(np.r_[null_starts, len(kept_offset)])]
    n_null = len(null_starts)
    journeys = Journeys(
        np.r_[np.ones(n_conv, bool), np.zeros(n_null, bool)],
        np.r_[credits["conversion_ts_ms"].to_numpy()[starts], kept_ts[null_ends]].astype(np.int64),
        np.r_[np.add.reduceat(counts, starts) if n_conv else np.zeros(0), np.zeros(n_null)],
        np.r_[np.add.reduceat(values, starts) if n_conv else np.zeros(0), np.zeros(n_null)],
        np.concatenate(([0], np.cumsum(lengths))).astype(np.int64),
        np.concatenate([credits["channel"].filter(pa.array(touched)).to_numpy(zero_copy_only=False),
                        probe["channel"].filter(pa.array(keep)).to_numpy(zero_copy_only=False)]).astype(object),
        np.r_[touch_ts[touched], kept_ts].astype(np.int64),
    )
    major = np.r_[partition[starts].astype(np.int64), np.full(n_null, _PROBES_AFTER)]
    minor = np.r_[offset[starts], kept_offset[null_starts]].astype(np.int64)
    return GroupJourneys(journeys.to_arrow(), major, minor)


def _codes(columns: list[pa.Array | pa.ChunkedArray]) -> np.ndarray:
    """Dense integer codes of the values of several string columns, one code space."""
    chunks = [c for column in columns for c in (column.chunks if isinstance(column, pa.ChunkedArray) else [column])]
    if not chunks:
        return np.zeros(0, np.int64)
    encoded = pa.chunked_array(chunks, pa.string()).dictionary_encode()
    return np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in encoded.chunks]
                          or [np.zeros(0, np.int32)]).astype(np.int64)


def _credited(person: np.ndarray, ts: np.ndarray, channel: np.ndarray, probe_person: np.ndarray,
              probe_ts: np.ndarray, probe_channel: np.ndarray) -> np.ndarray:
    """Per probe touchpoint: does a credited touchpoint have the same (person, ts, channel)?"""
    is_probe = np.r_[np.zeros(len(person), np.int8), np.ones(len(probe_person), np.int8)]
    p, t, c = np.r_[person, probe_person], np.r_[ts, probe_ts], np.r_[channel, probe_channel]
    order = np.lexsort((is_probe, c, t, p))  # a key's credited rows come first
    p, t, c = p[order], t[order], c[order]
    new_key = np.r_[True, (p[1:] != p[:-1]) | (t[1:] != t[:-1]) | (c[1:] != c[:-1])] if len(p) else np.zeros(0, bool)
    key = np.cumsum(new_key) - 1
    has_credit = (is_probe[order][new_key] == 0)[key]
    out = np.empty(len(p), bool)
    out[order] = has_credit
    return out[len(person):]


def merge_groups(parts: list[GroupJourneys]) -> Journeys:
    """The groups' journeys in one-pass order (see the module docstring)."""
    parts = [part for part in parts if part.journeys.num_rows]
    if not parts:
        return Journeys(np.zeros(0, bool), np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(1, np.int64),
                        np.zeros(0, object), np.zeros(0, np.int64))
    order = np.lexsort((np.concatenate([p.minor for p in parts]), np.concatenate([p.major for p in parts])))
    table = pa.concat_tables([p.journeys for p in parts])
    return Journeys.from_arrow(table.take(order) if len(parts) > 1 else table)

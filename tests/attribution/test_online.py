"""The online engine against the plain-Python reference: stitching, consent, late touchpoints, lookback,
the cap, fitted models; invariants, chunked == one shot, replays, pickling mid-stream."""

from __future__ import annotations

import json
import pickle
import random
from collections import Counter
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mkt_ray.attribution import CREDIT_SCHEMA, ONLINE_MODELS, IdentityGraph, TenantAttribution
from mkt_ray.contract import EVENT_TYPES, BatchDecoder, EventColumns
from mkt_ray.settings import TenantConfig
from tests.attribution.online_reference import MODELS, RefConfig, reference_credits
from tests.contract.factories import NOW_MS

DAY = 86_400_000
CHANNELS = ("google_ads", "meta", "email", "seo", "tiktok")
FLOATS = ("weight", "conversions_credit", "revenue_credit")


def event(kind: str, ts_ms: int, event_id: str, **fields) -> dict:
    stamp = datetime.fromtimestamp(ts_ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    base = {"schema_version": 1, "event_id": event_id, "tenant_id": "acme", "event_type": kind, "timestamp": stamp}
    if kind == "touchpoint":
        base |= {"campaign_id": f"c-{fields.get('source', 'x')}", "performance_metrics": {"impressions": 1}}
    if kind == "stage_change":
        base["metadata"] = {"stage": "lead"}
    if kind == "ad_metrics":
        base |= {"source": "meta", "campaign_id": "c9", "performance_metrics": {"impressions": 10}}
    return base | fields


def decode(events: list[dict], partitions: list[int] | None = None) -> EventColumns:
    """Columns of valid events (all must be valid), offsets counted per partition."""
    partitions = partitions or [0] * len(events)
    offsets, counts = [], Counter()
    for part in partitions:
        offsets.append(counts[part])
        counts[part] += 1
    raws = [json.dumps(e).encode() for e in events]
    batch = BatchDecoder(["acme"]).decode(raws, partitions, offsets, now_ms=NOW_MS)
    assert not batch.rejects and len(batch.duplicates) == 0, batch.reason_counts()
    return batch.events


def rows_of(cols: EventColumns) -> list[dict]:  # the events as dicts for the reference
    names = [n for n in cols.data if n != "event_type"]
    lists = [cols[n].tolist() for n in names]
    kinds = [EVENT_TYPES[code] for code in cols["event_type"].tolist()]
    return [dict(zip(names, values, strict=True), event_type=kind) for *values, kind in zip(*lists, kinds, strict=True)]


def grouped(rows: list[dict]) -> dict[tuple[str, str], list[dict]]:
    out: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        out.setdefault((row["conversion_id"], row["model"]), []).append(row)
    return out


def assert_matches(table: pa.Table, want: list[dict], tol: float = 1e-9) -> None:
    assert table.schema == CREDIT_SCHEMA
    got, want = grouped(table.to_pylist()), grouped(want)
    assert got.keys() == want.keys()
    for key, rows in got.items():
        assert len(rows) == len(want[key]), key
        for g, w in zip(rows, want[key], strict=True):
            assert {k: v for k, v in g.items() if k not in FLOATS} == {k: v for k, v in w.items() if k not in FLOATS}
            assert all(abs(g[k] - w[k]) <= tol * max(1.0, abs(w[k])) for k in FLOATS), (g, w)


def engine_for(cfg: RefConfig) -> TenantAttribution:
    engine = TenantAttribution(TenantConfig(
        lookback_days=cfg.lookback_days, half_life_days=cfg.half_life_days, position_first=cfg.position_first,
        position_last=cfg.position_last, consent_required=cfg.consent_required), cfg.cap)
    for model, values in cfg.channel_values.items():
        engine.set_channel_values(model, values)
    return engine


def generated(seed: int, n_events: int = 400, n_people: int = 15) -> tuple[list[dict], list[int]]:
    """Journeys in processing order: stitching, cross-person links, consent flips, late touchpoints."""
    rng = random.Random(seed)
    events, partitions = [], []
    for k in range(n_events):
        clock = NOW_MS - 54 * DAY + k * 53 * DAY // n_events
        ts = clock - rng.randint(0, 35 * DAY) if rng.random() < 0.15 else clock  # late
        i, j = rng.randrange(n_people), rng.randrange(n_people)
        who = rng.choice([{"anonymous_id": f"a{i}"}, {"device_id": f"d{i}"}, {"user_id": f"u{i}"}])
        kind = rng.choices(["touchpoint", "conversion", "identify", "stage_change", "consent", "ad_metrics"],
                           [45, 16, 9, 6, 6, 3])[0]
        fields = dict(who)
        if kind == "touchpoint":
            fields["source"] = rng.choice(CHANNELS)
            if rng.random() < 0.05:
                fields["consent"] = {"analytics": False}
        elif kind == "conversion":
            fields["performance_metrics"] = {"revenue": round(rng.uniform(5, 200), 2), "conversions": rng.randint(1, 3)}
        elif kind == "identify":
            fields = {"user_id": f"u{i}", "anonymous_id": f"a{i if rng.random() < 0.9 else j}"}
        elif kind == "stage_change":
            fields = {"user_id": f"u{i}", "device_id": f"d{i if rng.random() < 0.9 else j}"}
        elif kind == "consent":
            fields["consent"] = rng.choice([{"analytics": False}, {"analytics": True}, {"advertising": False}])
        events.append(event(kind, ts, f"e{k}", **({} if kind == "ad_metrics" else fields)))
        partitions.append(rng.choice([0, 0, 1]))
    return events, partitions


CONFIGS = {
    "default": RefConfig(),
    "consent_required_cap3": RefConfig(consent_required=True, cap=3, lookback_days=10, half_life_days=0.5),
    "fitted_shares": RefConfig(position_first=0.7, position_last=0.3, cap=5,
                               channel_values={"markov": {"meta": 2.0, "email": 1.0, "seo": 0.0}}),
    "both_fitted": RefConfig(lookback_days=3.5, channel_values={"markov": {c: 1.0 + n for n, c in enumerate(CHANNELS)},
                                                                 "data_driven": {"tiktok": 0.5}}),
}


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("seed", [1, 2])
def test_generated_journeys_match_the_reference(name: str, seed: int) -> None:
    cfg = CONFIGS[name]
    cols = decode(*generated(seed))
    table = engine_for(cfg).apply(cols)
    assert table.num_rows > 0
    assert_matches(table, reference_credits(rows_of(cols), cfg))


def test_stitching_late_touchpoints_lookback_consent_and_direct() -> None:
    t0 = NOW_MS - 20 * DAY
    events = [
        event("touchpoint", t0 - 40 * DAY, "t1", anonymous_id="a1", source="meta"),  # outside the lookback
        event("touchpoint", t0 - 5 * DAY, "t2", anonymous_id="a1", source="google_ads"),
        event("touchpoint", t0 - 2 * DAY, "t3", device_id="d1", source="email"),
        event("identify", t0 - DAY, "i1", user_id="u1", anonymous_id="a1"),
        event("stage_change", t0 - DAY, "s1", user_id="u1", device_id="d1"),  # together on one event
        event("conversion", t0, "v1", user_id="u1", performance_metrics={"revenue": 100.0}),
        event("touchpoint", t0 - 3 * DAY, "t4", anonymous_id="a1", source="tiktok"),  # late: after v1
        event("conversion", t0 + 1, "v2", user_id="u1"),
        event("conversion", t0, "v3", user_id="u2"),  # no touchpoint: direct
        event("consent", t0 + 2, "k1", device_id="d1", consent={"analytics": False}),
        event("touchpoint", t0 + 3, "t5", anonymous_id="a1", source="seo"),  # opted out: absent
        event("conversion", t0 + 4, "v4", user_id="u1"),  # opted out: not attributed
        event("consent", t0 + 5, "k2", user_id="u1", consent={"analytics": True}),
        event("conversion", t0 + 6, "v5", user_id="u1"),
        event("touchpoint", t0 - DAY, "t6", anonymous_id="a5", source="meta", consent={"analytics": False}),
        event("conversion", t0, "v6", anonymous_id="a5"),
    ]
    table = TenantAttribution(TenantConfig()).apply(decode(events))
    linear = grouped(table.to_pylist())
    paths = {conv: [r["channel"] for r in linear[conv, "linear"]] for conv, _ in linear}
    assert paths == {"v1": ["google_ads", "email"], "v2": ["google_ads", "tiktok", "email"], "v3": ["(direct)"],
                     "v5": ["google_ads", "tiktok", "email"], "v6": ["(direct)"]}
    assert {r["person"] for r in linear["v1", "linear"]} == {"anonymous_id:a1"}  # the oldest identity
    assert [r["revenue_credit"] for r in linear["v1", "first_touch"]] == [100.0, 0.0]
    assert all(r["fallback"] for model in ("markov", "data_driven") for r in linear["v1", model])


def test_cap_and_lookback_eviction_bound_a_person() -> None:
    t0 = NOW_MS - 50 * DAY
    touches = [event("touchpoint", t0 + n, f"t{n}", user_id="u1", source=CHANNELS[n]) for n in range(5)]
    later = [event("conversion", t0 + 10, "v1", user_id="u1"),
             event("conversion", t0 + 35 * DAY, "v2", user_id="u1"),  # evicts all: newest - lookback > t0
             event("conversion", t0 + 20 * DAY, "v3", user_id="u1")]  # late: its window lost them
    table = TenantAttribution(TenantConfig(), max_touchpoints_per_person=3).apply(decode(touches + later))
    linear = grouped(table.to_pylist())
    assert [r["channel"] for r in linear["v1", "linear"]] == ["email", "seo", "tiktok"]
    assert [r["channel"] for r in linear["v3", "linear"]] == ["(direct)"]


def test_window_bounds_are_lookback_exclusive_and_conversion_time_inclusive() -> None:
    t, lookback = NOW_MS - DAY, 30 * DAY
    events = [event("touchpoint", t + dt, f"t{n}", user_id="u1", source=CHANNELS[n])
              for n, dt in enumerate((-lookback, 1 - lookback, 0))]
    events += [event("conversion", t, "v1", user_id="u1"),
               event("touchpoint", t + 1, "t9", user_id="u2", source="meta"),  # after the conversion time
               event("conversion", t, "v2", user_id="u2")]
    linear = grouped(TenantAttribution(TenantConfig()).apply(decode(events)).to_pylist())
    assert [r["touch_ts_ms"] - t for r in linear["v1", "linear"]] == [1 - lookback, 0]
    assert [r["channel"] for r in linear["v2", "linear"]] == ["(direct)"]


journey_steps = st.lists(st.tuples(
    st.sampled_from(["touchpoint", "touchpoint", "conversion", "identify", "consent_off", "consent_on"]),
    st.integers(0, 2), st.integers(0, 40 * DAY), st.sampled_from(CHANNELS), st.floats(0, 500)),
    min_size=1, max_size=30)


def step_events(steps: list[tuple]) -> list[dict]:
    out = []
    for k, (kind, who, age, channel, value) in enumerate(steps):
        ts, ids = NOW_MS - age, {"anonymous_id": f"a{who}"} if k % 2 else {"user_id": f"u{who}"}
        if kind == "touchpoint":
            out.append(event(kind, ts, f"e{k}", source=channel, **ids))
        elif kind == "conversion":
            out.append(event(kind, ts, f"e{k}", performance_metrics={"revenue": value, "conversions": 1 + k % 3}, **ids))
        elif kind == "identify":
            out.append(event(kind, ts, f"e{k}", user_id=f"u{who}", anonymous_id=f"a{(who + k) % 3}"))
        else:
            out.append(event("consent", ts, f"e{k}", consent={"analytics": kind == "consent_on"}, **ids))
    return out


@settings(max_examples=100, deadline=None)
@given(steps=journey_steps, values=st.none() | st.dictionaries(st.sampled_from(CHANNELS), st.floats(0, 5)))
def test_credits_sum_to_the_conversion_and_match_the_reference(steps: list[tuple], values) -> None:
    cfg = RefConfig(cap=4, channel_values={} if values is None else {"markov": values})
    cols = decode(step_events(steps))
    table = engine_for(cfg).apply(cols)
    assert_matches(table, reference_credits(rows_of(cols), cfg))
    conversions = {e["event_id"]: e for e in rows_of(cols)}
    for (conv, _), rows in grouped(table.to_pylist()).items():
        assert all(r[k] >= 0 for r in rows for k in FLOATS)
        assert sum(r["weight"] for r in rows) == pytest.approx(1.0, abs=1e-9)
        assert sum(r["conversions_credit"] for r in rows) == pytest.approx(conversions[conv]["conversions"], abs=1e-9)
        assert sum(r["revenue_credit"] for r in rows) == pytest.approx(conversions[conv]["revenue"], abs=1e-9)
        if len(rows) == 1:
            assert rows[0]["weight"] == 1.0


def sorted_table(tables: list[pa.Table]) -> pa.Table:
    return pa.concat_tables(tables).sort_by([("conversion_id", "ascending"), ("model", "ascending")])


@pytest.mark.parametrize("seed", [3, 4])
def test_chunked_apply_equals_one_shot(seed: int) -> None:
    cfg = CONFIGS["fitted_shares"]
    cols = decode(*generated(seed))
    cuts = [0, *sorted(random.Random(seed).sample(range(1, len(cols)), 6)), len(cols)]
    chunked = engine_for(cfg)
    parts = [chunked.apply(cols.take(np.arange(lo, hi))) for lo, hi in zip(cuts, cuts[1:], strict=False)]
    assert sorted_table(parts).equals(sorted_table([engine_for(cfg).apply(cols)]))


def test_replayed_batches_add_nothing() -> None:
    cols = decode(*generated(5))
    engine, once = engine_for(RefConfig()), engine_for(RefConfig())
    first = engine.apply(cols.take(np.arange(0, 250)))
    assert engine.apply(cols.take(np.arange(0, 250))).num_rows == 0
    overlap = engine.apply(cols.take(np.arange(100, len(cols))))  # a replay from an older checkpoint
    assert sorted_table([first, overlap]).equals(sorted_table([once.apply(cols)]))
    assert engine.high_water == once.high_water == {p: int(cols["offset"][cols["partition"] == p].max()) for p in (0, 1)}


def test_pickle_mid_stream_then_continue_equals_uninterrupted() -> None:
    cols = decode(*generated(6))
    cfg = CONFIGS["both_fitted"]
    straight, paused = engine_for(cfg), engine_for(cfg)
    halves = [cols.take(np.arange(0, 200)), cols.take(np.arange(200, len(cols)))]
    straight.apply(halves[0])
    paused.apply(halves[0])
    resumed = pickle.loads(pickle.dumps(paused))
    assert resumed.apply(halves[1]).equals(straight.apply(halves[1]))


def test_forget_drops_the_person_and_set_channel_values_checks() -> None:
    t0 = NOW_MS - DAY
    engine = TenantAttribution(TenantConfig())
    engine.apply(decode([event("touchpoint", t0, "t1", anonymous_id="a1", source="meta"),
                         event("identify", t0, "i1", user_id="u1", anonymous_id="a1")]))
    assert sorted(engine.forget("user_id:u1")) == ["anonymous_id:a1", "user_id:u1"]
    assert engine.forget("user_id:u1") == []
    table = engine.apply(decode([event("conversion", t0, "v1", user_id="u1")], [1]))
    assert set(table.column("channel").to_pylist()) == {"(direct)"}
    assert sorted(set(table.column("model").to_pylist())) == sorted(ONLINE_MODELS) == sorted(MODELS)
    with pytest.raises(ValueError, match="finite and >= 0"):
        engine.set_channel_values("markov", {"meta": -1.0})
    with pytest.raises(ValueError, match="not 'linear'"):
        engine.set_channel_values("linear", {"meta": 1.0})
    other = decode([event("conversion", t0, "v2", user_id="u1")], [1])
    other.data["tenant_id"] = np.array(["globex"], object)
    with pytest.raises(ValueError, match="one tenant"):
        engine.apply(other)
    assert engine.high_water == {0: 1, 1: 0} and engine.apply(EventColumns.empty()).num_rows == 0


def test_identity_graph_links_oldest_first_and_pickles() -> None:
    graph = IdentityGraph()
    assert graph.person(["anonymous_id:a1"]) == "anonymous_id:a1"
    assert graph.person(["user_id:u1", "device_id:d1"]) == "user_id:u1"
    assert graph.roots(["device_id:d1", "anonymous_id:a1", "user_id:nobody"]) == ["anonymous_id:a1", "user_id:u1"]
    assert graph.person(["device_id:d1", "anonymous_id:a1"]) == "anonymous_id:a1"
    copy = pickle.loads(pickle.dumps(graph))
    assert copy.find("user_id:u1") == "anonymous_id:a1" and len(copy) == 3
    assert sorted(copy.forget("device_id:d1")) == ["anonymous_id:a1", "device_id:d1", "user_id:u1"]
    assert len(copy) == 0 and copy.find("user_id:u1") is None
    with pytest.raises(ValueError):
        graph.person([])

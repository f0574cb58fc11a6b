"""Accepted forms, columnar output, duplicates, and the fast path agreeing with the reference."""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mkt_ray.contract import EVENT_TYPES, BatchDecoder, classify, json_schema
from tests.contract.factories import NOW_MS, TENANTS, encode, make_event


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def test_every_event_type_accepted() -> None:
    messages = [encode(make_event(t, event_id=f"e{i}")) for i, t in enumerate(EVENT_TYPES)]
    batch = BatchDecoder(TENANTS).decode(messages, now_ms=NOW_MS)
    assert batch.rejects == [] and len(batch.events) == len(EVENT_TYPES)
    assert [EVENT_TYPES[c] for c in batch.events["event_type"]] == list(EVENT_TYPES)


def test_timestamps_with_z_and_offsets_are_the_same_instant() -> None:
    forms = ["2026-11-27T11:30:00Z", "2026-11-27T12:30:00+01:00", "2026-11-27T06:00:00-05:30", "2026-11-27T11:30:00.250Z"]
    messages = [encode(make_event(event_id=f"e{i}", timestamp=ts)) for i, ts in enumerate(forms)]
    batch = BatchDecoder(TENANTS).decode(messages, now_ms=NOW_MS)
    assert batch.rejects == []
    assert batch.events["ts_ms"].tolist() == [_ms("2026-11-27T11:30:00+00:00")] * 3 + [_ms("2026-11-27T11:30:00.250+00:00")]


def test_other_rfc3339_forms_are_read_by_the_contract_parser() -> None:
    """Forms the compiled parser leaves aside (lower-case separators, a space, `+hhmm`, 7+ fraction digits)
    decode to the same instants as the usual form; a time without a zone is refused whatever its form."""
    forms = ["2026-11-27t11:30:00z", "2026-11-27 11:30:00Z", "2026-11-27T12:30:00+0100",
             "2026-11-27T11:30:00.2509999Z", "2026-11-27T11:30:00.9999996Z"]
    messages = [encode(make_event(event_id=f"e{i}", timestamp=ts)) for i, ts in enumerate(forms)]
    messages.append(encode(make_event(event_id="naive", timestamp="2026-11-27 11:30:00")))
    batch = BatchDecoder(TENANTS).decode(messages, now_ms=NOW_MS)
    assert [(r.index, r.reason.code) for r in batch.rejects] == [(5, "invalid_value")]
    base = _ms("2026-11-27T11:30:00+00:00")
    assert batch.events["ts_ms"].tolist() == [base, base, base, base + 251, base + 1000]


def test_missing_metrics_are_zero_and_conversions_default_to_one() -> None:
    messages = [
        encode(make_event("touchpoint", event_id="t", performance_metrics={"clicks": 1, "impressions": 1})),
        encode(make_event("touchpoint", event_id="t2", drop=("performance_metrics",))),
        encode(make_event("conversion", event_id="c", performance_metrics={"revenue": 10})),
        encode(make_event("conversion", event_id="c0", performance_metrics={"conversions": 0, "revenue": 1})),
        encode(make_event("conversion", event_id="c3", performance_metrics={"conversions": 3, "clicks": None})),
    ]
    ev = BatchDecoder(TENANTS).decode(messages, now_ms=NOW_MS).events
    assert ev["impressions"].tolist() == [1, 0, 0, 0, 0]
    assert ev["clicks"].tolist() == [1, 0, 0, 0, 0]
    assert ev["conversions"].tolist() == [0, 0, 1, 0, 3]
    assert ev["cost"].tolist() == [0.0] * 5
    assert ev["revenue"].tolist() == [0.0, 0.0, 10.0, 1.0, 0.0]


def test_null_fields_are_absent_and_consent_flags_are_tri_state() -> None:
    message = make_event("consent", device_id=None, consent={"analytics": False, "personalization": None})
    ev = BatchDecoder(TENANTS).decode([encode(message)], now_ms=NOW_MS).events
    assert ev["device_id"].tolist() == [None]
    assert (ev["consent_analytics"][0], ev["consent_personalization"][0], ev["consent_advertising"][0]) == (0, -1, -1)


def test_duplicates_are_dropped_and_counted_per_tenant() -> None:
    first = encode(make_event(event_id="same"))
    other_tenant = encode(make_event(event_id="same", tenant_id="globex"))
    decoder = BatchDecoder(TENANTS)
    batch = decoder.decode([first, other_tenant, first], now_ms=NOW_MS)
    assert batch.duplicates.tolist() == [2] and len(batch.events) == 2
    assert decoder.decode([first], now_ms=NOW_MS).duplicates.tolist() == [0]  # across batches too


def test_duplicate_window_is_24h_of_event_time() -> None:
    decoder = BatchDecoder(TENANTS)
    old = encode(make_event(event_id="x", timestamp="2026-11-26T09:00:00Z"))
    later = encode(make_event(event_id="y", timestamp="2026-11-27T10:00:00Z"))  # watermark moves 25 h on
    assert decoder.decode([old, later, old], now_ms=NOW_MS).duplicates.tolist() == []


def test_a_repeat_of_a_rejected_message_is_rejected_again() -> None:
    bad = encode(make_event(event_id="r", tenant_id="hooli"))
    batch = BatchDecoder(TENANTS).decode([bad, bad], now_ms=NOW_MS)
    assert [r.reason.code for r in batch.rejects] == ["unknown_tenant"] * 2 and batch.duplicates.size == 0


def test_arrow_table_round_trips_the_columns() -> None:
    messages = [encode(make_event(t, event_id=f"e{i}")) for i, t in enumerate(EVENT_TYPES)]
    ev = BatchDecoder(TENANTS).decode(messages, partitions=[2] * 10, offsets=range(100, 110), now_ms=NOW_MS).events
    table = ev.to_arrow()
    assert table.num_rows == 10
    assert table.column("event_type").to_pylist() == list(EVENT_TYPES)
    assert table.column("offset").to_pylist() == list(range(100, 110))
    assert json.loads(table.column("metadata")[2].as_py()) == {"stage": "lead"}


def test_json_schema_is_derived_and_strict() -> None:
    schema = json_schema()
    assert schema["additionalProperties"] is False
    assert schema["properties"]["schema_version"] == {"const": 1}
    assert set(schema["required"]) == {"schema_version", "event_id", "tenant_id", "event_type", "timestamp"}
    touch = next(r for r in schema["allOf"] if r["if"]["properties"]["event_type"]["const"] == "touchpoint")
    assert touch["then"] == {"required": ["source", "campaign_id"]}


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(-2, 2) | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner, max_size=2),
    max_leaves=4,
)
_fields = st.sampled_from(
    ["schema_version", "event_id", "tenant_id", "event_type", "timestamp", "source", "campaign_id", "user_id",
     "anonymous_id", "email_sha256", "performance_metrics", "consent", "metadata", "ip", "extra"]
)
_interesting = st.sampled_from(
    [1, 2, "acme", "hooli", "Acme", "", "x", None, True, 0, -1, 2.5, {"clicks": 2, "impressions": 1},
     {"cost": -1}, {"analytics": False}, {"stage": "s"}, {"email": 1}, "2026-11-27T11:00:00Z",
     "2026-11-27T11:00:00", "2026-12-27T11:00:00Z", "ad_metrics", "identify", "touchpoint", "consent"]
)


@settings(max_examples=400, deadline=None)
@given(
    event_type=st.sampled_from(EVENT_TYPES),
    mutations=st.dictionaries(_fields, _interesting | _json_values, max_size=3),
    drops=st.lists(_fields, max_size=2),
)
def test_fast_path_agrees_with_reference(event_type: str, mutations: dict, drops: list) -> None:
    message = make_event(event_type, drop=tuple(drops), **mutations)
    raw = encode(message)
    expected = classify(raw, TENANTS, NOW_MS)
    batch = BatchDecoder(TENANTS).decode([raw], now_ms=NOW_MS)
    got = batch.rejects[0].reason if batch.rejects else None
    assert got == expected
    assert len(batch.events) == (expected is None)
    if expected is None:
        assert np.isfinite(batch.events["cost"]).all()

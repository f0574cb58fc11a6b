"""The raw-store side of right to be forgotten, without Ray: linked identities, rewritten Parquet (plain
and encrypted), tombstones and the masks the pipeline applies with them."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import pytest

from mkt_ray.contract import IDENTITY_FIELDS, BatchDecoder
from mkt_ray.rawstore import (
    Tombstones,
    archive_events,
    forget_raw_rows,
    forgotten_raw,
    forgotten_rows,
    identity_hash,
    identity_nodes,
    linked_nodes,
    load_tombstones,
    read_raw,
    save_tombstones,
)

TS = (datetime.now(UTC) - timedelta(hours=1)).isoformat()


def _line(event_id: str, tenant: str = "acme", **ids: str) -> bytes:
    return json.dumps({"schema_version": 1, "event_id": event_id, "tenant_id": tenant, "event_type": "touchpoint",
                       "timestamp": TS, "source": "meta", "campaign_id": "c", **ids}).encode()


LINES = [_line("1", user_id="u1"), _line("2", user_id="u1", anonymous_id="a1"), _line("3", anonymous_id="a1",
         device_id="d1"), _line("4", device_id="d1"), _line("5", user_id="u2"), _line("6", tenant="globex", user_id="u1")]


@pytest.mark.parametrize("key", [None, os.urandom(32)], ids=["plain", "encrypted"])
def test_forget_rewrites_files_without_the_persons_rows(tmp_path, key) -> None:
    uri = str(tmp_path / "raw")
    events = BatchDecoder(["acme", "globex"]).decode(LINES).events
    archive_events(events.take(events["event_id"] != "5"), uri, "p0-a", key=key)
    archive_events(events.take(events["event_id"] == "5"), uri, "p0-b", key=key)
    person = linked_nodes(uri, "acme", identity_nodes("user_id:u1"), key)  # u1 - a1 - d1, through events 2 and 3
    assert person == {"user_id:u1", "anonymous_id:a1", "device_id:d1"}
    assert forget_raw_rows(uri, "acme", person, key) == (4, 1)
    assert sorted(read_raw(uri, key=key)["event_id"].to_pylist()) == ["5", "6"]  # globex's u1 is someone else
    assert forget_raw_rows(uri, "acme", person, key) == (0, 0)
    assert not [p for p in (tmp_path / "raw").rglob("*") if p.name.startswith(("_rewrite", "."))]


def test_tombstones_mask_events_and_raw_messages(tmp_path) -> None:
    uri = str(tmp_path / "raw")
    assert identity_nodes("a1") == ["user_id:a1", "anonymous_id:a1", "device_id:a1", "account_id:a1"]
    save_tombstones(uri, "acme", [identity_hash("acme", "user_id:u1")])
    assert save_tombstones(uri, "acme", [identity_hash("acme", "anonymous_id:a1")]) == 2
    tombstones = load_tombstones(uri)
    assert "u1" not in (tmp_path / "raw" / "_tombstones" / "acme.json").read_text()
    events = BatchDecoder(["acme", "globex"]).decode(LINES).events
    assert forgotten_rows(events["tenant_id"], events, tombstones).tolist() == [True, True, True, False, False, False]
    raws = [LINES[0], LINES[5], b"not json", b'{"tenant_id": "acme", "anonymous_id": "a1", "x": 1}']
    assert forgotten_raw(raws, tombstones).tolist() == [True, False, False, True]


def _reference_forgotten(events, hashes: dict[str, set[str]]) -> list[bool]:
    """Row by row: any identity value whose tenant-salted hash is tombstoned."""
    return [any(events[f][i] is not None and identity_hash(events["tenant_id"][i], f"{f}:{events[f][i]}")
                in hashes.get(events["tenant_id"][i], ()) for f in IDENTITY_FIELDS) for i in range(len(events))]


def test_a_members_tombstones_judge_each_value_once_and_start_over_when_more_arrive() -> None:
    from mkt_ray.workload import generate_workload

    now = datetime.now(UTC)
    lines = list(generate_workload(3000, ["acme", "globex", "initech"], 11, now, invalid_share=0.0))
    events = BatchDecoder(["acme", "globex", "initech"]).decode(lines).events
    first = {(events["tenant_id"][i], f, events[f][i]) for i in range(0, len(events), 97) for f in IDENTITY_FIELDS
             if events[f][i] is not None and events["tenant_id"][i] != "initech"}  # initech: no tombstone yet
    hashes: dict[str, set[str]] = {}
    for tenant, field, value in sorted(first):
        hashes.setdefault(tenant, set()).add(identity_hash(tenant, f"{field}:{value}"))
    hashes["globex"].add(identity_hash("globex", "user_id:acme-only"))  # never in the stream
    tombstones = Tombstones({t: frozenset(h) for t, h in hashes.items()})
    expected = _reference_forgotten(events, hashes)
    assert 0 < sum(expected) < len(events)
    for _ in range(2):  # judged, then from the verdicts kept
        assert tombstones.rows(events["tenant_id"], events).tolist() == expected
    half = len(events) // 2  # slices: the verdicts of other rows serve
    assert tombstones.rows(events["tenant_id"][half:], events.take(slice(half, None))).tolist() == expected[half:]
    # a value judged clean is tombstoned later (and a tenant gets its first): its verdicts start over
    row = next(i for i in range(len(events))
               if not expected[i] and events["tenant_id"][i] == "acme" and events["anonymous_id"][i] is not None)
    late = identity_hash("acme", f"anonymous_id:{events['anonymous_id'][row]}")
    tombstones.add("acme", [late])
    device = next(d for t, d in zip(events["tenant_id"], events["device_id"], strict=True) if t == "initech" and d)
    tombstones.add("initech", [identity_hash("initech", f"device_id:{device}")])
    hashes["acme"].add(late)
    hashes["initech"] = set(tombstones.hashes["initech"])
    expected = _reference_forgotten(events, hashes)
    assert expected[row] and tombstones.rows(events["tenant_id"], events).tolist() == expected
    assert tombstones.judged() == len({(events["tenant_id"][i], f, events[f][i]) for i in range(len(events))
                                       for f in IDENTITY_FIELDS if events[f][i] is not None})
    small = Tombstones(tombstones.hashes, memo_limit=10)  # verdicts dropped at every call: the same answer
    for _ in range(2):
        assert small.rows(events["tenant_id"], events).tolist() == expected
    assert small.rows(events["tenant_id"][:half], events.take(slice(0, half))).tolist() == expected[:half]
    assert small.judged() == len({(events["tenant_id"][i], f, events[f][i]) for i in range(half)
                                  for f in IDENTITY_FIELDS if events[f][i] is not None})
    assert forgotten_rows(events["tenant_id"], events, tombstones.hashes).tolist() == expected
    assert not Tombstones().rows(events["tenant_id"], events).any()

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


def test_a_members_tombstones_judge_each_value_once_and_start_over_when_more_arrive(monkeypatch) -> None:
    import mkt_ray.rawstore._forget as forget
    from mkt_ray.workload import generate_workload

    hashed: list[tuple[str, str]] = []  # (tenant, node) of every hash the checks compute
    monkeypatch.setattr(forget, "identity_hash", lambda tenant, node: hashed.append((tenant, node)) or identity_hash(tenant, node))
    lines = list(generate_workload(3000, ["acme", "globex", "initech"], 11, datetime.now(UTC), invalid_share=0.0))
    events = BatchDecoder(["acme", "globex", "initech"]).decode(lines).events
    rows = range(len(events))

    def nodes(tenants: set[str], upto: int = len(events)) -> set[tuple[str, str]]:
        return {(events["tenant_id"][i], f"{f}:{events[f][i]}") for i in range(upto) for f in IDENTITY_FIELDS
                if events[f][i] is not None and events["tenant_id"][i] in tenants}

    hashes: dict[str, set[str]] = {"globex": {identity_hash("globex", "user_id:never-seen")}}
    for tenant, node in sorted(nodes({"acme", "globex"}))[::97]:  # initech: no tombstone yet
        hashes.setdefault(tenant, set()).add(identity_hash(tenant, node))
    tombstones = Tombstones({t: frozenset(h) for t, h in hashes.items()})
    expected = _reference_forgotten(events, hashes)
    assert 0 < sum(expected) < len(events)
    gone = {(t, n) for t, n in nodes({"acme", "globex"}) if identity_hash(t, n) in hashes[t]}
    assert tombstones.rows(events["tenant_id"], events).tolist() == expected
    assert set(hashed) == nodes({"acme", "globex"}) and len(hashed) == len(set(hashed))  # each value once
    hashed.clear()
    assert tombstones.rows(events["tenant_id"], events).tolist() == expected
    assert sorted(hashed) == sorted(gone)  # clean values are kept; the forgotten ones are not
    half = len(events) // 2  # a slice: the verdicts of other rows serve
    assert tombstones.rows(events["tenant_id"][half:], events.take(slice(half, None))).tolist() == expected[half:]
    # a value judged clean is tombstoned later, and a tenant gets its first: their values are judged again
    row = next(i for i in rows if not expected[i] and events["tenant_id"][i] == "acme" and events["anonymous_id"][i])
    device = next(d for t, d in zip(events["tenant_id"], events["device_id"], strict=True) if t == "initech" and d)
    hashes["acme"].add(identity_hash("acme", f"anonymous_id:{events['anonymous_id'][row]}"))
    hashes["initech"] = {identity_hash("initech", f"device_id:{device}")}
    tombstones.add("acme", [identity_hash("acme", f"anonymous_id:{events['anonymous_id'][row]}")])
    tombstones.add("initech", hashes["initech"])
    expected = _reference_forgotten(events, hashes)
    hashed.clear()
    assert expected[row] and tombstones.rows(events["tenant_id"], events).tolist() == expected
    assert set(hashed) == nodes({"acme", "initech"}) | {(t, n) for t, n in gone if t == "globex"}
    everyone = {"acme", "globex", "initech"}
    assert tombstones.judged() == len({(t, n) for t, n in nodes(everyone) if identity_hash(t, n) not in hashes[t]})
    small = Tombstones(tombstones.hashes, memo_limit=tombstones.judged() // 2)  # dropped at every call: same answer
    for _ in range(2):
        assert small.rows(events["tenant_id"], events).tolist() == expected
    assert small.rows(events["tenant_id"][:half], events.take(slice(0, half))).tolist() == expected[:half]
    assert small.judged() == len({(t, n) for t, n in nodes(everyone, half) if identity_hash(t, n) not in hashes[t]})
    assert forgotten_rows(events["tenant_id"], events, tombstones.hashes).tolist() == expected
    assert not Tombstones().rows(events["tenant_id"], events).any()

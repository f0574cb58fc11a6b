"""Checkpoint files: a state saved ahead of the ledger (a batch decoded but never written) is dropped at
takeover, so a later keep=1 save (after a right-to-be-forgotten request) is the one that survives; with
the raw store encrypted, checkpoints are sealed under its key, and an unsealed one is loaded only when
the operator allows it and the partition has no sealed one, and is then sealed in place."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from mkt_ray.pipeline import PartitionState, drop_checkpoints_after, load_checkpoint, save_checkpoint
from mkt_ray.rawstore import RawKeyError
from mkt_ray.settings import load_settings


def _offsets(root: Path, partition: int) -> list[int]:
    return sorted(int(p.stem) for p in (root / "_checkpoints" / f"p{partition}").glob("*.pkl"))


def test_checkpoints_ahead_of_the_ledger_are_dropped_and_keep_one_keeps_the_new_one(tmp_path: Path) -> None:
    uri = str(tmp_path)
    for offset in (99, 199, 299):  # 299: saved for a batch the member never wrote
        save_checkpoint(uri, 3, offset, PartitionState())
    save_checkpoint(uri, 4, 500, PartitionState())
    assert drop_checkpoints_after(uri, 3, 199) == 1  # the ledger is at 199
    assert _offsets(tmp_path, 3) == [99, 199]
    assert _offsets(tmp_path, 4) == [500]  # another partition is untouched
    assert load_checkpoint(uri, 3, at_most=10**9)[0] == 199
    save_checkpoint(uri, 3, 250, PartitionState(), keep=1)  # after a forget: only the state without the person
    assert _offsets(tmp_path, 3) == [250]
    assert drop_checkpoints_after(uri, 7, 0) == 0  # a partition with no checkpoints


def _state(event_id: str) -> PartitionState:
    """A state that accepted `event_id` and forgot the person `user_id:person-{event_id}` (whose id it keeps as a tombstone)."""
    state = PartitionState()
    one = np.array(["acme"], object), np.array([event_id], object), np.array([1_700_000_000_000])
    state.decoder.dedup.mark_duplicates(*one)
    state.forget("acme", f"user_id:person-{event_id}", {})
    return state


def _accepted(state: PartitionState) -> dict[str, int]:
    """Which of the ids these tests use the state's dedup index holds, with their times."""
    ids = ("ev-secret-41", "ev-older", "ev-before", "ev-after")
    held = {event_id: state.decoder.dedup.accepted_at("acme", event_id) for event_id in ids}
    return {event_id: ts for event_id, ts in held.items() if ts is not None}


def test_sealed_checkpoints_open_only_with_their_key_and_name(tmp_path: Path) -> None:
    uri, key, other = str(tmp_path), os.urandom(32), os.urandom(32)
    save_checkpoint(uri, 2, 41, _state("ev-secret-41"), key=key)
    path = tmp_path / "_checkpoints" / "p2" / f"{41:020d}.pkl"
    assert b"person-ev-secret-41" not in path.read_bytes()  # the ids are not readable on disk
    offset, restored = load_checkpoint(uri, 2, at_most=100, key=key)
    assert (offset, _accepted(restored)) == (41, {"ev-secret-41": 1_700_000_000_000})
    with pytest.raises(RawKeyError, match="is encrypted: configure raw_store.encryption_key"):
        load_checkpoint(uri, 2, at_most=100)
    with pytest.raises(RawKeyError, match="the configured key does not open it"):
        load_checkpoint(uri, 2, at_most=100, key=other)
    path.rename(path.with_name(f"{45:020d}.pkl"))  # sealed for offset 41: it does not pass for 45
    with pytest.raises(RawKeyError, match="checkpoint p2/00000000000000000045"):
        load_checkpoint(uri, 2, at_most=100, key=key)


def test_with_a_key_a_plain_checkpoint_is_refused_unless_allowed_and_then_sealed_in_place(tmp_path: Path) -> None:
    uri, key = str(tmp_path), os.urandom(32)
    folder = tmp_path / "_checkpoints" / "p0"
    save_checkpoint(uri, 0, 4, _state("ev-older"))  # written while the store was not encrypted (or planted)
    save_checkpoint(uri, 0, 9, _state("ev-before"))
    assert _accepted(load_checkpoint(uri, 0, at_most=9)[1]) == {"ev-before": 1_700_000_000_000}
    with pytest.raises(RawKeyError, match=r"checkpoint p0/00000000000000000009 is not sealed .*read_plain_checkpoints"):
        load_checkpoint(uri, 0, at_most=9, key=key)  # a pickle nobody with the key vouches for
    restored = load_checkpoint(uri, 0, at_most=9, key=key, read_plain=True)  # the operator says it is theirs
    assert _accepted(restored[1]) == {"ev-before": 1_700_000_000_000}
    # both plain checkpoints are sealed in place: the next start needs no setting, and they open only with the key
    assert all(f.read_bytes().startswith(b"MKTSEAL1") for f in folder.glob("*.pkl")) and len(list(folder.glob("*.pkl"))) == 2
    assert _accepted(load_checkpoint(uri, 0, at_most=5, key=key)[1]) == {"ev-older": 1_700_000_000_000}
    with pytest.raises(RawKeyError, match="is encrypted"):
        load_checkpoint(uri, 0, at_most=9)
    save_checkpoint(uri, 0, 19, _state("ev-after"), key=key, keep=1)
    assert _offsets(tmp_path, 0) == [19]
    assert b"person-ev-after" not in (folder / f"{19:020d}.pkl").read_bytes()
    assert _accepted(load_checkpoint(uri, 0, at_most=19, key=key)[1]) == {"ev-after": 1_700_000_000_000}


def test_a_plain_checkpoint_beside_sealed_ones_is_refused_even_when_allowed(tmp_path: Path) -> None:
    uri, key = str(tmp_path), os.urandom(32)
    save_checkpoint(uri, 5, 10, _state("ev-sealed"), key=key)
    save_checkpoint(uri, 5, 20, _state("ev-planted"))  # not from before encryption: a sealed one exists
    with pytest.raises(RawKeyError, match="checkpoints of partition 5 are sealed .* not loaded even with"):
        load_checkpoint(uri, 5, at_most=20, key=key, read_plain=True)
    planted = tmp_path / "_checkpoints" / "p5" / f"{20:020d}.pkl"
    assert not planted.read_bytes().startswith(b"MKTSEAL1")  # left as it was, for the operator to look at
    planted.unlink()
    assert load_checkpoint(uri, 5, at_most=20, key=key, read_plain=True)[0] == 10


def test_reading_plain_checkpoints_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MKT_RAW_STORE__READ_PLAIN_CHECKPOINTS", raising=False)
    assert load_settings().raw_store.read_plain_checkpoints is False
    monkeypatch.setenv("MKT_RAW_STORE__READ_PLAIN_CHECKPOINTS", "true")
    assert load_settings().raw_store.read_plain_checkpoints is True


def test_a_small_tenant_costs_tens_of_kilobytes_of_state() -> None:
    """A partition may carry hundreds of tenants with few events each: each tenant's share of the state (its
    attribution engine and dedup table, as checkpointed) starts small and grows with its own traffic."""
    state, tenants = PartitionState(), [f"t{i}" for i in range(200)]
    for tenant in tenants:
        state.engine(tenant, {})
        state.decoder.dedup.mark_duplicates(np.array([tenant], object), np.array(["ev-1"], object), np.array([1]))
    per_tenant = len(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)) / len(tenants)
    assert per_tenant < 48_000, per_tenant  # was ~510 KB

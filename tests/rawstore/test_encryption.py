"""Encrypted raw store: files round-trip with the key and reveal nothing without it (or with another)."""

from __future__ import annotations

import secrets
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from pydantic import SecretStr

from mkt_ray.contract import BatchDecoder
from mkt_ray.errors import ConfigError
from mkt_ray.rawstore import RawKeyError, archive_events, parse_key, raw_key, read_raw
from mkt_ray.settings import RawStoreSettings
from tests.contract.factories import NOW_MS, encode, make_event


def _events():
    lines = [encode(make_event(event_id=f"e{i}")) for i in range(5)]
    return BatchDecoder(["acme"]).decode(lines, np.zeros(5, np.int32), np.arange(5), now_ms=NOW_MS).events


def _files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.parquet"))


def test_encrypted_files_round_trip_with_the_key_and_fail_without(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    events = _events()
    assert archive_events(events, str(tmp_path), "p0-a-b", key=key) == 5
    files = _files(tmp_path)
    assert files
    back = read_raw(str(tmp_path), key=key)
    assert sorted(back["event_id"].to_pylist()) == sorted(events["event_id"].tolist())
    assert back.num_rows == 5
    for path in files:
        assert b"acme" not in path.read_bytes().replace(b"tenant_id=acme", b"")  # values never in clear
        with pytest.raises(OSError, match="(?i)decrypt|encrypt|key"):
            pq.read_table(path)
    with pytest.raises(RawKeyError, match="is encrypted: configure raw_store.encryption_key"):
        read_raw(str(tmp_path))
    with pytest.raises(RawKeyError, match="written with another raw_store.encryption_key"):
        read_raw(str(tmp_path), key=secrets.token_bytes(32))


def test_unencrypted_store_is_unchanged_without_a_key(tmp_path: Path) -> None:
    archive_events(_events(), str(tmp_path), "p0-a-b")
    assert pq.read_table(_files(tmp_path)[0]).num_rows == 5


def test_key_from_settings_hex_base64_file_and_bad_values(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    assert raw_key(RawStoreSettings(encryption_key=SecretStr(key.hex()))) == key
    (tmp_path / "k").write_text(__import__("base64").b64encode(key).decode() + "\n")
    assert raw_key(RawStoreSettings(encryption_key_file=tmp_path / "k")) == key
    assert raw_key(RawStoreSettings()) is None
    with pytest.raises(ConfigError, match="256-bit"):
        parse_key("abcd", "x")
    with pytest.raises(ConfigError, match="does not exist|No such file"):
        raw_key(RawStoreSettings(encryption_key_file=tmp_path / "missing"))

"""Replay / backfill from the raw store: into an empty warehouse it rebuilds the live run's totals;
run again, or over the live warehouse, it changes nothing; a tombstoned person stays out. A restarted
member refuses an unsealed checkpoint in the encrypted store unless the operator allows it."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pydantic import SecretStr

from actors.launcher import Platform
from mkt_ray.errors import MktRayError
from mkt_ray.kafka import produce_lines, topic_end_offsets
from mkt_ray.pipeline import load_checkpoint, tenant_key
from mkt_ray.rawstore import RawKeyError, identity_hash, read_raw, save_tombstones
from mkt_ray.settings import PipelineSettings, RawStoreSettings, load_settings
from mkt_ray.workload import generate_workload

pytestmark = pytest.mark.platform
TENANTS = ["acme", "globex"]
KEY = bytes(range(32))


@pytest.fixture(scope="module")
def live(broker, kafka_settings, ray_session, tmp_path_factory) -> dict:
    """A live run over 30 hours of events (two UTC days at least), raw store encrypted; its totals per tenant."""

    folder = tmp_path_factory.mktemp("replay")
    tag = folder.name.replace("_", "-")
    settings = load_settings(
        data_dir=folder / "live",
        kafka=kafka_settings(bootstrap_servers=broker.bootstrap, consumer_group=f"g-{tag}", partitions=2),
        pipeline=PipelineSettings(ingest_actors=1, batch_size=2000, checkpoint_every_s=1e-6),  # one per batch
        raw_store=RawStoreSettings(encryption_key=SecretStr(KEY.hex())),
    ).with_tenants(TENANTS)
    now = datetime.now(UTC)
    lines = list(generate_workload(6000, TENANTS, 5, now, span_hours=30))
    with Platform(settings) as platform:
        platform.wait_until_assigned()
        produce_lines(platform.kafka_conf, settings.kafka.topic_events, lines, tenant_key)
        platform.wait_until_applied(topic_end_offsets(platform.kafka_conf, settings.kafka.topic_events), 180)
        kpis, credits = platform.kpi_totals(), platform.attribution_totals()
    days = ((now - timedelta(hours=31)).date().isoformat(), (now + timedelta(hours=1)).date().isoformat())
    return {"folder": folder, "raw": settings.raw_uri, "kpis": kpis, "credits": credits, "days": days,
            "settings": settings}


def _replay(live: dict, data_dir: Path, tenant: str) -> dict:
    env = {**os.environ, "MKT_DATA_DIR": str(data_dir), "MKT_RAW_STORE__ENCRYPTION_KEY": KEY.hex()}
    since, until = live["days"]
    done = subprocess.run([sys.executable, "-m", "training.replay", "--input", live["raw"], "--tenant", tenant,
                           "--since", since, "--until", until], capture_output=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return json.loads(done.stdout)


def _assert_equal_to_live(report: dict, live: dict, tenant: str) -> None:
    kpis = report["totals"]["kpis"]
    expected = live["kpis"][tenant]
    assert {k: kpis[k] for k in ("events", "impressions", "clicks", "conversions")} == {
        k: expected[k] for k in ("events", "impressions", "clicks", "conversions")}
    for k in ("cost", "revenue"):
        assert kpis[k] == pytest.approx(expected[k], rel=1e-9)
    got = report["totals"]["attribution"]
    assert got.keys() == live["credits"][tenant].keys()
    for model, channels in live["credits"][tenant].items():
        assert got[model].keys() == channels.keys(), model
        for channel, credit in channels.items():
            assert got[model][channel]["conversions"] == pytest.approx(credit["conversions"], rel=1e-9, abs=1e-9)
            assert got[model][channel]["revenue"] == pytest.approx(credit["revenue"], rel=1e-9, abs=1e-9)


def test_the_live_run_sealed_its_checkpoints_under_the_raw_store_key(live: dict) -> None:
    files = sorted(Path(live["raw"], "_checkpoints").rglob("*.pkl"))
    assert files, "the ingest member saved no checkpoint"
    assert all(f.read_bytes().startswith(b"MKTSEAL1") for f in files)  # sealed, not plain pickles
    accepted = 0
    for folder in {f.parent for f in files}:
        with pytest.raises(RawKeyError):
            load_checkpoint(live["raw"], int(folder.name[1:]), at_most=10**12)  # no key
        _, state = load_checkpoint(live["raw"], int(folder.name[1:]), at_most=10**12, key=KEY)
        accepted += len(state.decoder.dedup)
    # the newest checkpoints, opened with the key, hold every event the warehouse counted, each once
    assert accepted == sum(int(live["kpis"][t]["events"]) for t in TENANTS)


def test_replay_into_an_empty_warehouse_twice_equals_the_live_run(live: dict) -> None:
    tenant = "acme"
    fresh = live["folder"] / "fresh"
    first = _replay(live, fresh, tenant)
    assert first["kpi_rows_inserted"] == first["kpi_windows_compared"] > 0
    _assert_equal_to_live(first, live, tenant)
    second = _replay(live, fresh, tenant)
    assert second["kpi_rows_inserted"] == 0
    assert second["totals"] == first["totals"]


def test_replay_over_the_live_warehouse_changes_nothing(live: dict) -> None:
    report = _replay(live, live["folder"] / "live", "globex")
    assert report["kpi_rows_inserted"] == 0
    assert report["credit_rows_written"] > 0  # rewritten with the live keys: replaced, not added
    _assert_equal_to_live(report, live, "globex")


def test_tombstoned_person_stays_out_of_a_rebuild(live: dict) -> None:
    raw = live["folder"] / "raw-with-tombstone"
    shutil.copytree(live["raw"], raw)
    with pytest.raises(RawKeyError):  # the archive the pipeline wrote is encrypted
        read_raw(str(raw), "acme")
    table = read_raw(str(raw), "acme", key=KEY)
    conversions = table.filter(pc.equal(pc.cast(table["event_type"], pa.string()), "conversion"))
    users = Counter(u for u in conversions["user_id"].to_pylist() if u is not None)
    person, their_conversions = users.most_common(1)[0]
    save_tombstones(str(raw), "acme", [identity_hash("acme", f"user_id:{person}")])
    rows = table.filter(pc.equal(table["user_id"], person)).num_rows
    report = _replay({**live, "raw": str(raw)}, live["folder"] / "fresh-tombstone", "acme")
    assert report["events_forgotten"] == rows > 0
    live_conversions = sum(c["conversions"] for c in live["credits"]["acme"]["last_touch"].values())
    rebuilt = sum(c["conversions"] for c in report["totals"]["attribution"]["last_touch"].values())
    assert rebuilt == pytest.approx(live_conversions - their_conversions, abs=1e-9)


def test_a_restarted_member_refuses_an_unsealed_checkpoint_unless_allowed(live: dict) -> None:
    """Last in the module: it restarts the live platform (which then has nothing new to apply)."""
    files = sorted(Path(live["raw"], "_checkpoints", "p0").glob("*.pkl"))
    sealed = {f: f.read_bytes() for f in files}
    states = {f: load_checkpoint(live["raw"], 0, at_most=int(f.stem), key=KEY)[1] for f in files}
    for f, state in states.items():  # the same states, unsealed: as if written before encryption was on
        f.write_bytes(pickle.dumps(state))
    newest, settings = files[-1], live["settings"]
    try:
        with Platform(settings) as platform, pytest.raises(MktRayError, match=f"checkpoint p0/{newest.stem} is not sealed"):
            platform.wait_until_assigned()
        allowed = settings.model_copy(update={"raw_store": settings.raw_store.model_copy(
            update={"read_plain_checkpoints": True})})
        with Platform(allowed) as platform:
            platform.wait_until_assigned()  # resumed from it: no error
            assert platform.stats()["read"] == 0  # nothing new to apply
        # sealed in place, every one: the next start needs no setting
        assert all(f.read_bytes().startswith(b"MKTSEAL1") for f in files)
        assert load_checkpoint(live["raw"], 0, at_most=int(newest.stem), key=KEY)[1].decoder.dedup == (
            states[newest].decoder.dedup)
    finally:
        for f, blob in sealed.items():
            f.write_bytes(blob)

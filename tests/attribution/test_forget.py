"""Right to be forgotten in the online engine and the partition state: what goes, what stays gone
across a checkpoint, and that a replay of the same offsets never links a forgotten person again."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from mkt_ray.attribution import TenantAttribution
from mkt_ray.pipeline import PartitionState, attribute_partition, load_checkpoint, save_checkpoint
from mkt_ray.settings import TenantConfig
from tests.attribution.online_reference import RefConfig, reference_credits
from tests.attribution.test_online import assert_matches, decode, engine_for, event, generated, rows_of
from tests.contract.factories import NOW_MS

DAY = 86_400_000
TENANTS = {"acme": TenantConfig()}
VICTIMS = ("user_id:u3", "anonymous_id:a5", "device_id:d7")


def forget_events(bounds: dict[str, dict[int, int]]) -> list[dict]:
    return [{"forget": identity, "through": through} for identity, through in bounds.items()]


@pytest.mark.parametrize("seed", [11, 12])
def test_forget_mid_stream_matches_the_reference(seed: int) -> None:
    cols = decode(*generated(seed))
    rows, cut = rows_of(cols), len(cols) // 2
    engine = engine_for(RefConfig())
    first = engine.apply(cols.take(np.arange(cut)))
    removed = [engine.forget_person(victim) for victim in VICTIMS]
    assert all(identity not in engine.graph for gone in removed for identity in gone.identities)
    assert all(gone.through == engine.high_water for gone in removed)
    second = engine.apply(cols.take(np.arange(cut, len(cols))))
    want = reference_credits(rows[:cut] + [{"forget": v, "through": None} for v in VICTIMS] + rows[cut:], RefConfig())
    assert_matches(pa.concat_tables([first, second]), want)


def test_forget_removes_links_touchpoints_and_consent() -> None:
    t0 = NOW_MS - DAY
    engine = TenantAttribution(TenantConfig(consent_required=True))
    engine.apply(decode([
        event("consent", t0, "k1", anonymous_id="a1", consent={"analytics": True}),
        event("touchpoint", t0 + 1, "t1", anonymous_id="a1", source="meta"),
        event("touchpoint", t0 + 2, "t2", anonymous_id="a1", source="email"),
        event("identify", t0 + 3, "i1", user_id="u1", anonymous_id="a1"),
        event("consent", t0 + 4, "k2", anonymous_id="a2", consent={"analytics": True}),
        event("touchpoint", t0 + 5, "t3", anonymous_id="a2", source="seo"),
    ]))
    gone = engine.forget_person("user_id:u1")
    assert sorted(gone.identities) == ["anonymous_id:a1", "user_id:u1"]
    assert gone.touchpoints == 2 and gone.through == {0: 5}
    assert engine.journeys.touchpoints() == 1 and len(engine.graph) == 1  # a2 and its touchpoint stay
    assert engine.forgotten == {"anonymous_id:a1": {0: 5}, "user_id:u1": {0: 5}}
    # new data after the request: u1 is unknown again, so without consent (required) nothing is credited
    later = engine.apply(decode([event("conversion", t0 + 6, "v1", user_id="u1")], [1]))
    assert later.num_rows == 0
    with pytest.raises(ValueError, match="field:value"):
        engine.forget("email:someone")


def test_restored_state_keeps_forgetting_and_a_rebuild_never_relinks(tmp_path) -> None:
    cols = decode(*generated(13, n_people=6))
    state = PartitionState()
    attribute_partition(state, cols, TENANTS, applied=-1)
    engine = state.attribution["acme"]
    gone = state.forget("acme", "user_id:u2", TENANTS)
    assert gone.identities and gone.touchpoints > 0
    save_checkpoint(str(tmp_path), 0, int(cols["offset"].max()), state)
    _, restored = load_checkpoint(str(tmp_path), 0, at_most=10**9)
    again = restored.attribution["acme"]
    assert again.forgotten == engine.forgotten and all(i not in again.graph for i in gone.identities)
    assert attribute_partition(restored, cols, TENANTS, applied=-1).num_rows == 0  # same offsets: nothing
    # a rebuild from scratch with the tombstones re-applied: their events are ignored, no person relinks
    rebuilt = PartitionState()
    for identity, through in engine.forgotten.items():
        rebuilt.forget("acme", identity, TENANTS, through)
    rows = attribute_partition(rebuilt, cols, TENANTS, applied=-1)
    assert not set(rows["person"].to_pylist()) & set(gone.identities)
    assert all(i not in rebuilt.attribution["acme"].graph for i in gone.identities)
    assert set(rows["link"].to_pylist()) == {"deterministic"}
    assert_matches(rows.drop_columns(["touch_index", "link"]),
                   reference_credits(forget_events(engine.forgotten) + rows_of(cols), RefConfig()))

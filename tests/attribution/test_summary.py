"""The `attribution_summary` view on real chDB: per tenant, model and channel it equals sums over the
reference's credit rows, however often the pipeline re-inserts the same rows (replays after a restart)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from mkt_ray.pipeline import (
    ATTRIBUTION,
    PartitionState,
    attribute_partition,
    nest_summary,
    pipeline_ddl,
    summary_sql,
)
from mkt_ray.settings import TenantConfig
from mkt_ray.warehouse import ChdbWarehouse
from tests.attribution.online_reference import RefConfig, reference_credits
from tests.attribution.test_online import decode, generated, rows_of


def expected_summary(rows: list[dict]) -> dict:
    sums: dict = defaultdict(lambda: {"conversions": 0.0, "revenue": 0.0, "touchpoints": 0, "credited": set(),
                                      "fallback": set()})
    for row in rows:
        slot = sums[row["tenant_id"], row["model"], row["channel"]]
        slot["conversions"] += row["conversions_credit"]
        slot["revenue"] += row["revenue_credit"]
        slot["touchpoints"] += 1
        slot["credited"].add((row["partition"], row["offset"]))
        if row["fallback"]:
            slot["fallback"].add((row["partition"], row["offset"]))
    out: dict = {}
    for (tenant, model, channel), v in sums.items():
        out.setdefault(tenant, {}).setdefault(model, {})[channel] = {
            "conversions": v["conversions"], "revenue": v["revenue"], "touchpoints": v["touchpoints"],
            "credited_conversions": len(v["credited"]), "fallback_conversions": len(v["fallback"])}
    return out


def test_summary_equals_the_reference_under_reinserts(tmp_path) -> None:
    cols = decode(*generated(21))
    cfg = RefConfig(channel_values={"markov": {"meta": 2.0, "email": 1.0}})  # data_driven falls back
    state, tenants = PartitionState(), {"acme": TenantConfig()}
    state.engine("acme", tenants).set_channel_values("markov", cfg.channel_values["markov"])
    cut = len(cols) // 2
    first = attribute_partition(state, cols.take(np.arange(cut)), tenants, applied=-1)
    second = attribute_partition(state, cols.take(np.arange(cut, len(cols))), tenants, applied=-1)
    # a member restored from a checkpoint before `second` replays it: the same keyed rows again
    replay = PartitionState()
    replay.engine("acme", tenants).set_channel_values("markov", cfg.channel_values["markov"])
    attribute_partition(replay, cols.take(np.arange(cut)), tenants, applied=-1)
    replayed = attribute_partition(replay, cols.take(np.arange(cut, len(cols))), tenants, applied=-1)
    assert replayed.equals(second)
    with ChdbWarehouse(tmp_path / "wh", "mkt") as wh:
        for statement in pipeline_ddl("mkt"):
            wh.execute(statement)
        for rows in (first, second, replayed, first):
            wh.insert_arrow(ATTRIBUTION, rows)
        got = nest_summary(wh.query_rows(summary_sql("mkt")))
    want = expected_summary(reference_credits(rows_of(cols), cfg))
    assert got.keys() == want.keys() == {"acme"}
    assert got["acme"].keys() == want["acme"].keys()
    for model, channels in want["acme"].items():
        assert got["acme"][model].keys() == channels.keys(), model
        for channel, values in channels.items():
            for name, value in values.items():
                assert got["acme"][model][channel][name] == pytest.approx(value, rel=1e-9, abs=1e-9), (model, channel)
    assert any(v["fallback_conversions"] for v in got["acme"]["data_driven"].values())
    assert not any(v["fallback_conversions"] for v in got["acme"]["linear"].values())

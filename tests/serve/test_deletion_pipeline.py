"""Right to be forgotten through the real pipeline and the real API: after a DELETE completes the person
has zero rows in every tier, a replay of the topic from its start does not bring it back, and KPIs stay."""

from __future__ import annotations

import json
import shutil

import pyarrow.compute as pc
import pytest
import ray
from pydantic import SecretStr

from actors.launcher import Platform
from mkt_ray.kafka import produce_lines, topic_end_offsets
from mkt_ray.pipeline import tenant_key
from mkt_ray.rawstore import read_raw
from mkt_ray.settings import WarehouseSettings
from mkt_ray.warehouse.http_endpoint import EndpointProcess
from tests.serve._platform_api import event, lines, metric_totals, platform_api, platform_settings, wait_for

pytestmark = pytest.mark.platform
ALICE = ["user_id:alice", "anonymous_id:anon-a"]  # linked by an identify event
TOUCH = {"source": "google_ads", "campaign_id": "spring", "performance_metrics": {"impressions": 1, "clicks": 1, "cost": 0.5}}


def _events() -> tuple[list[dict], list[bytes]]:
    """acme: alice (anonymous touches, then identified, converts), bob; globex also has a user `alice`."""
    valid = [
        event("a1", "touchpoint", 50, anonymous_id="anon-a", **TOUCH),
        event("a2", "touchpoint", 40, anonymous_id="anon-a", **{**TOUCH, "source": "meta"}),
        event("a3", "identify", 35, user_id="alice", anonymous_id="anon-a"),
        event("a4", "conversion", 30, user_id="alice", performance_metrics={"revenue": 80.0}),
        event("b1", "touchpoint", 45, user_id="bob", **TOUCH),
        event("b2", "conversion", 20, user_id="bob", performance_metrics={"revenue": 30.0}),
        event("g1", "touchpoint", 44, tenant="globex", user_id="alice", **TOUCH),
        event("g2", "conversion", 25, tenant="globex", user_id="alice", performance_metrics={"revenue": 9.0}),
    ]
    invalid = [json.dumps(event("a5", "touchpoint", 10, user_id="alice", colour="red", **TOUCH)).encode(),
               json.dumps(event("b3", "touchpoint", 10, user_id="bob", colour="red", **TOUCH)).encode()]
    return valid, lines(valid) + invalid


def _tiers(platform: Platform, raw_uri: str) -> dict[str, int]:
    """Rows of alice (acme) in every tier."""
    db = platform.settings.warehouse.database
    credits = platform.query(f"SELECT count() FROM {db}.attribution_credits FINAL WHERE tenant_id = 'acme' "
                             "AND person IN {ids:Array(String)}", {"ids": ALICE})[0][0]
    quarantine = platform.query(f"SELECT count() FROM {db}.quarantine FINAL WHERE tenant_id = 'acme' "
                                "AND position(raw, '\"alice\"') > 0")[0][0]
    raw = read_raw(raw_uri, "acme")
    raw_rows = int(pc.sum(pc.or_kleene(pc.equal(raw["user_id"], "alice"), pc.equal(raw["anonymous_id"], "anon-a")))
                   .as_py() or 0)
    held = sum(ray.get([member.holds.remote("acme", ALICE) for member in platform.ingest]))
    return {"attribution": int(credits), "quarantine": int(quarantine), "raw": raw_rows, "engine": held}


def test_forget_removes_the_person_everywhere_and_replays_keep_it_out(broker, serve_api, tmp_path) -> None:
    settings = platform_settings(broker.bootstrap, tmp_path / "data", ["acme", "globex"])
    valid, messages = _events()
    with platform_api(settings, serve_api.url) as api:
        platform = api.platform
        produce_lines(platform.kafka_conf, settings.kafka.topic_events, messages, tenant_key)
        api.wait_until_applied()
        kpis = platform.kpi_totals()
        before = _tiers(platform, settings.raw_uri)
        # alice's conversion credits her two touchpoints under 7 models; a5 is quarantined (unknown field)
        assert before == {"attribution": 14, "quarantine": 1, "raw": 4, "engine": 2}
        assert kpis == metric_totals(valid)
        globex_credits = platform.attribution_totals()["globex"]
        # her journey by either id: credits carry the person's root id (the older, anonymous one)
        for name in ("user_id:alice", "anonymous_id:anon-a"):
            journey = api.request("GET", f"/v1/tenants/acme/journeys/{name}", role="analyst").json()
            assert journey["identities"] == ALICE[::-1]
            assert [(c["conversion_id"], c["revenue"], [t["channel"] for t in c["touches"]])
                    for c in journey["conversions"]] == [("a4", pytest.approx(80.0), ["google_ads", "meta"])]

        answer = api.request("DELETE", "/v1/tenants/acme/persons/user_id:alice", role="admin")
        assert answer.status_code == 202, answer.text
        request_id = answer.json()["request_id"]
        assert api.request("DELETE", "/v1/tenants/acme/persons/alice", role="analyst").status_code == 403
        status = wait_for(lambda: (s := api.request("GET", f"/v1/tenants/acme/deletions/{request_id}",
                                                     role="admin").json())["status"] in ("done", "failed") and s)
        assert status["status"] == "done", status
        assert {k: status[k] for k in ("identities", "engine_identities", "attribution_rows", "quarantine_rows",
                                       "raw_rows")} == {"identities": 2, "engine_identities": 2,
                                                        "attribution_rows": before["attribution"],
                                                        "quarantine_rows": 1, "raw_rows": 4}
        assert "alice" not in json.dumps(status)  # the audit keeps a hash
        assert _tiers(platform, settings.raw_uri) == {"attribution": 0, "quarantine": 0, "raw": 0, "engine": 0}
        assert platform.kpi_totals() == kpis
        assert platform.attribution_totals()["globex"] == globex_credits  # the other tenant's alice stays

    # replay: same data, a fresh consumer group, no checkpoints, so every offset is decoded again
    shutil.rmtree(tmp_path / "data" / "raw" / "_checkpoints", ignore_errors=True)
    replay = platform_settings(broker.bootstrap, tmp_path / "data", ["acme", "globex"], kafka=settings.kafka)
    later = [event("a6", "touchpoint", 5, user_id="alice", **TOUCH), event("b4", "conversion", 4, user_id="bob",
                                                                           performance_metrics={"revenue": 5.0})]
    with Platform(replay, say=lambda _m: None) as platform:
        platform.wait_until_assigned()
        produce_lines(platform.kafka_conf, replay.kafka.topic_events, lines(later), tenant_key)
        platform.wait_until_applied(topic_end_offsets(platform.kafka_conf, replay.kafka.topic_events), 60)
        assert _tiers(platform, replay.raw_uri) == {"attribution": 0, "quarantine": 0, "raw": 0, "engine": 0}
        assert platform.kpi_totals() == metric_totals(valid + later)
        bob = platform.query(f"SELECT count(DISTINCT conversion_id) FROM {replay.warehouse.database}."
                             "attribution_credits FINAL WHERE tenant_id = 'acme' AND person = 'user_id:bob'")[0][0]
        assert bob == 2  # the pipeline kept attributing everyone else


def test_forget_on_a_clickhouse_server_backend(broker, serve_api, tmp_path) -> None:
    """With a ClickHouse server the API's replica reads the server itself; a DELETE still reaches the
    platform's deletion actor and empties the person's warehouse, raw and engine tiers."""
    settings = platform_settings(broker.bootstrap, tmp_path / "data", ["acme", "globex"])
    valid, messages = _events()
    with EndpointProcess(tmp_path / "clickhouse") as endpoint:
        settings = settings.model_copy(update={
            "warehouse": WarehouseSettings(backend="clickhouse", url=endpoint.url),
            "api": settings.api.model_copy(update={"secret": SecretStr("a-test-secret-" + "x" * 32)})})
        with platform_api(settings, serve_api.url) as api:
            platform = api.platform
            produce_lines(platform.kafka_conf, settings.kafka.topic_events, messages, tenant_key)
            api.wait_until_applied()
            before = _tiers(platform, settings.raw_uri)
            assert before == {"attribution": 14, "quarantine": 1, "raw": 4, "engine": 2}
            kpis = platform.kpi_totals()
            answer = api.request("DELETE", "/v1/tenants/acme/persons/anonymous_id:anon-a", role="admin")
            assert answer.status_code == 202, answer.text
            request_id = answer.json()["request_id"]
            status = wait_for(lambda: (s := api.request("GET", f"/v1/tenants/acme/deletions/{request_id}",
                                                         role="admin").json())["status"] in ("done", "failed") and s)
            assert status["status"] == "done", status
            assert _tiers(platform, settings.raw_uri) == {"attribution": 0, "quarantine": 0, "raw": 0, "engine": 0}
            assert platform.kpi_totals() == kpis == metric_totals(valid)

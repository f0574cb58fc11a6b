"""A member whose loop stopped on an error is restarted by `mkt-ray up`'s supervision and goes on from the
ledger, counting every event once; one that keeps failing stops the platform with its error. The fault is
real: the warehouse table the member writes credits to is renamed away (its insert fails), then back."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import ray

from actors.launcher import Platform
from actors.supervise import MemberRestarts
from mkt_ray.errors import MktRayError
from mkt_ray.kafka import produce_lines, topic_end_offsets
from mkt_ray.pipeline import ATTRIBUTION
from mkt_ray.settings import KafkaSettings, PipelineSettings, load_settings
from tests.contract.factories import encode, make_event


def _conversions(prefix: str, n: int) -> list[bytes]:
    return [encode(make_event("conversion", event_id=f"{prefix}{i}", user_id=f"u-{prefix}{i}")) for i in range(n)]


def _wait_for_error(platform: Platform, timeout_s: float = 60.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        error = ray.get(platform.ingest[0].stats.remote())["error"]
        if error:
            return error
        time.sleep(0.2)
    raise AssertionError(f"the member did not fail within {timeout_s} s")


@pytest.mark.platform
def test_a_failed_member_is_restarted_and_counts_every_event_once(ray_session, tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path / "data", kafka=KafkaSettings(partitions=1, consumer_group="g-restarts"),
        pipeline=PipelineSettings(ingest_actors=1, shards=1), tenants={"acme": {}})
    db = settings.warehouse.database
    now = [0.0]
    restarts = MemberRestarts(limit=1, window_s=600, clock=lambda: now[0])
    with Platform(settings, say=print) as platform:
        platform.wait_until_assigned()
        conf, topic = platform.kafka_conf, settings.kafka.topic_events

        def produce_and_apply(lines: list[bytes]) -> None:
            produce_lines(conf, topic, lines, lambda _: b"acme")
            platform.wait_until_applied(topic_end_offsets(conf, topic), 60)

        def hide_credits_table() -> None:
            ray.get(platform.store.execute.remote(f"RENAME TABLE {db}.{ATTRIBUTION} TO {db}.hidden"))

        def restore_credits_table() -> None:
            ray.get(platform.store.execute.remote(f"RENAME TABLE {db}.hidden TO {db}.{ATTRIBUTION}"))

        produce_and_apply(_conversions("a", 30))
        assert restarts.check(platform.ingest) == []  # nothing failed: nothing done
        hide_credits_table()
        produce_lines(conf, topic, _conversions("b", 20), lambda _: b"acme")
        error = _wait_for_error(platform)
        assert "WarehouseError" in error and "hidden" not in error
        restore_credits_table()
        (said,) = restarts.check(platform.ingest)
        assert said.startswith(f"ingest member 0 stopped on {error}; restarted it (1 of 1 restarts allowed in 10 min)")
        produce_and_apply(_conversions("c", 10))
        assert platform.kpi_totals()["acme"]["conversions"] == 60  # the failed batch applied once, after the restart
        credits = platform.attribution_totals()["acme"]
        assert {model: round(channels["(direct)"]["conversions"], 9) for model, channels in credits.items()} == {
            model: 60.0 for model in credits}
        # failing again within the window: more restarts than allowed stop the platform with the error
        now[0] += 60
        hide_credits_table()
        produce_lines(conf, topic, _conversions("d", 5), lambda _: b"acme")
        error = _wait_for_error(platform)
        with pytest.raises(MktRayError, match="ingest member 0 failed 2 times within 10 min; the last time: "):
            restarts.check(platform.ingest)
        restore_credits_table()

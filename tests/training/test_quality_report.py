"""The daily quality report over a pipeline run with one problem of each kind injected lists each of
them, with the exact counts; the daily timer fires once a day after its hour."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from actors.launcher import Platform
from mkt_ray.kafka import produce_lines, topic_end_offsets
from mkt_ray.settings import PipelineSettings, load_settings
from training._jobs import StoreClient
from training.quality_report import REPORTS, QualitySchedule, write_report

MINUTE = 60_000


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ad(i: int, ts: int, tenant: str = "acme", campaign: str = "c1", **metrics) -> bytes:
    return json.dumps({"schema_version": 1, "event_id": f"{tenant}-{i}", "tenant_id": tenant, "event_type": "ad_metrics",
                       "timestamp": _iso(ts), "source": "meta", "campaign_id": campaign,
                       "performance_metrics": metrics}).encode()


def _touch(i: int, ts: int) -> bytes:
    return json.dumps({"schema_version": 1, "event_id": f"t-{i}", "tenant_id": "acme", "event_type": "touchpoint",
                       "timestamp": _iso(ts), "source": "google_ads", "campaign_id": "c2", "anonymous_id": f"a{i}",
                       "performance_metrics": {"clicks": 1}}).encode()


def _minutes(now_ms: int) -> list[int]:
    """Six minute starts ending near now, all on now's UTC day (m5 may lie up to 5 min ahead: allowed)."""
    midnight = now_ms // 86_400_000 * 86_400_000
    m0 = max(now_ms // MINUTE * MINUTE - 10 * MINUTE, midnight)
    return [m0 + k * MINUTE for k in range(6)]


@pytest.mark.platform
def test_report_lists_every_injected_problem(broker, kafka_settings, ray_session, tmp_path: Path) -> None:
    now_ms = int(time.time() * 1000)
    if now_ms % 86_400_000 < 15_000:  # just past midnight: let the day have room for m5
        time.sleep(15)
        now_ms = int(time.time() * 1000)
    m = _minutes(now_ms)
    tag = tmp_path.name.replace("_", "-")
    settings = load_settings(
        data_dir=tmp_path / "data",
        kafka=kafka_settings(bootstrap_servers=broker.bootstrap, consumer_group=f"g-{tag}", partitions=1),
        pipeline=PipelineSettings(ingest_actors=1, shards=1),
        tenants={"acme": {"allowed_lateness_s": 0}, "globex": {"allowed_lateness_s": 0}},
    )
    first = [
        *[_ad(i, m[0] + 900 * i, impressions=100, clicks=5, cost=10.0) for i in range(50)],  # the outlier rule's history
        _ad(60, m[0] + 55_000, impressions=100, clicks=1, cost=1e6),  # outlier: ~10^5 x the usual spend
        _touch(7, m[1] + 1000), _touch(8, m[1] + 2000),  # window c2/google_ads: 2 clicks, 0 impressions
        *[_ad(100 + i, m[2] + 1000 * i, tenant="globex", impressions=50, clicks=2, cost=1.5) for i in range(3)],
        _ad(80, m[2], impressions=-5), _ad(81, m[2], clicks=-1),  # negative_metric x2
        b'{"tenant_id": "acme", "oops"',  # invalid_json: tenant unreadable
        *[_ad(90 + i, now_ms + 20 * MINUTE, impressions=1) for i in range(3)],  # future_timestamp x3
        _ad(70, m[5], impressions=10, clicks=1, cost=2.0),  # watermark m5: m0..m4 close (lateness 0)
    ]
    late = [_ad(99, m[0] + 40_000, campaign="c9", impressions=10, clicks=1, cost=1.0)]  # window m0 closed already
    with Platform(settings) as platform:
        platform.wait_until_assigned()
        for batch in (first, late):
            produce_lines(platform.kafka_conf, settings.kafka.topic_events, batch, lambda _: b"acme")
            platform.wait_until_applied(topic_end_offsets(platform.kafka_conf, settings.kafka.topic_events), 180)
        day = datetime.fromtimestamp(now_ms / 1000, UTC).date()
        warehouse = StoreClient(platform.store)
        report = write_report(warehouse, settings.warehouse.database, day, tmp_path / "out")
        stored = platform.query(f"SELECT tenant_id, section, item, value FROM {settings.warehouse.database}.{REPORTS} "
                                "FINAL WHERE report_date = {d:String} ORDER BY tenant_id, section, item",
                                {"d": day.isoformat()})
        # the daily timer of `mkt-ray up`: the day after, past its hour, the same report; a day without events, none
        after = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1, hours=2)
        due = QualitySchedule(hour_utc=1, clock=lambda: after).run_if_due(warehouse, settings)
        quiet = QualitySchedule(hour_utc=1, clock=lambda: after + timedelta(days=3)).run_if_due(warehouse, settings)

    assert due == (day, report)
    assert quiet == (day + timedelta(days=3), {})
    assert json.loads((settings.data_dir / "quality" / f"quality-{day}.json").read_text())["tenants"] == report
    acme, globex = report["acme"], report["globex"]
    assert acme["volume"] == {"events": 54, "impressions": 5020, "clicks": 254, "conversions": 0, "cost": 503.0,
                              "revenue": 0.0}
    assert globex["volume"] == {"events": 3, "impressions": 150, "clicks": 6, "conversions": 0, "cost": 4.5,
                                "revenue": 0.0}
    assert acme["quarantine"] == {"future_timestamp": 3, "negative_metric": 2, "outlier": 1}
    assert report["(unreadable)"]["quarantine"] == {"invalid_json": 1}
    assert acme["outliers"] == {"count": 1, "examples": [{"partition": 0, "offset": 50}]}
    minute_windows = [e for e in acme["ratio_violations"]["examples"] if e["window"] == "tumbling_1m"]
    assert minute_windows == [{"rule": "clicks_exceed_impressions", "window": "tumbling_1m", "campaign_id": "c2",
                               "source": "google_ads", "window_start_ms": m[1]}]
    assert acme["late"] == {"events": 1, "max_delay_ms": m[5] - (m[0] + MINUTE)}
    assert globex["late"] == {} and globex["ratio_violations"] == {} and globex["quarantine"] == {}

    files = json.loads((tmp_path / "out" / f"quality-{day}.json").read_text())
    assert files == {"date": day.isoformat(), "tenants": report}
    page = (tmp_path / "out" / f"quality-{day}.html").read_text()
    assert all(word in page for word in ("acme", "globex", "clicks_exceed_impressions", "future_timestamp", "late"))
    assert ("acme", "late", "events", 1.0) in stored
    assert ("acme", "quarantine", "outlier", 1.0) in stored
    assert ("globex", "volume", "impressions", 150.0) in stored


def test_daily_timer_fires_once_per_day_after_its_hour() -> None:
    clock = [datetime(2026, 11, 27, 0, 30, tzinfo=UTC)]
    schedule = QualitySchedule(hour_utc=1, clock=lambda: clock[0])
    assert schedule.due() is None  # before 01:00
    clock[0] += timedelta(hours=1)
    assert schedule.due() == date(2026, 11, 26)
    schedule.last = schedule.due()
    clock[0] += timedelta(hours=5)
    assert schedule.due() is None  # done for today
    clock[0] += timedelta(days=1)
    assert schedule.due() == date(2026, 11, 27)

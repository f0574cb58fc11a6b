"""A running pipeline (Platform on the session broker and Ray) with the query API deployed on the
session's Serve beside the `serve_api` fixture's app, under its own route prefix."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import ray
from ray import serve

from actors.launcher import Platform
from mkt_ray.kafka import topic_end_offsets
from mkt_ray.settings import KafkaSettings, PipelineSettings, Settings, load_settings
from serve_apps.auth import issue_token


@dataclass
class PlatformApi:
    platform: Platform
    url: str

    def headers(self, tenant: str, role: str) -> dict[str, str]:
        secret = self.platform.settings.api.secret.get_secret_value()
        return {"Authorization": f"Bearer {issue_token(secret, tenant, role)}"}

    def request(self, method: str, path: str, tenant: str = "acme", role: str = "service",
                headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers(tenant, role), **(headers or {})}
        return httpx.request(method, self.url + path, headers=headers, timeout=60, **kwargs)

    def wait_until_applied(self) -> None:
        conf, topic = self.platform.kafka_conf, self.platform.settings.kafka.topic_events
        self.platform.wait_until_applied(topic_end_offsets(conf, topic), 60)


def platform_settings(bootstrap: str, data_dir: Path, tenants: list[str], group: str | None = None,
                      kafka: KafkaSettings | None = None) -> Settings:
    tag = uuid.uuid4().hex[:10]
    kafka = kafka or KafkaSettings(bootstrap_servers=bootstrap, topic_events=f"ev-{tag}", topic_quarantine=f"q-{tag}",
                                   topic_signals=f"s-{tag}", topic_alerts=f"a-{tag}", partitions=2)
    kafka = kafka.model_copy(update={"consumer_group": group or f"g-{tag}"})
    return load_settings(data_dir=data_dir, kafka=kafka,
                         pipeline=PipelineSettings(ingest_actors=1, shards=1, batch_size=2000)).with_tenants(tenants)


@contextmanager
def platform_api(settings: Settings, serve_url: str) -> Iterator[PlatformApi]:
    """Start the platform and deploy the API for it (the session Serve must be running: `serve_api`)."""
    from serve_apps.query import build_app

    tag = uuid.uuid4().hex[:8]
    with Platform(settings, say=lambda _m: None) as platform:
        platform.wait_until_assigned()
        name = f"api-{tag}"
        serve.run(build_app(settings, (platform.store_name, ray.get_runtime_context().namespace)), name=name,
                  route_prefix=f"/{name}")
        try:
            yield PlatformApi(platform, f"{serve_url}/{name}")
        finally:
            serve.delete(name)


def event(event_id: str, event_type: str, minutes_ago: float, tenant: str = "acme", **fields: Any) -> dict[str, Any]:
    """A contract v1 event stamped `minutes_ago` before now."""
    ts = (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat().replace("+00:00", "Z")
    return {"schema_version": 1, "event_id": event_id, "tenant_id": tenant, "event_type": event_type,
            "timestamp": ts, **fields}


def metric_totals(events: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per-tenant KPI totals of valid events, in plain Python (the contract's KPI semantics)."""
    out: dict[str, dict[str, float]] = {}
    for e in events:
        m = e.get("performance_metrics") or {}
        row = out.setdefault(e["tenant_id"], {"events": 0, "impressions": 0, "clicks": 0, "conversions": 0,
                                              "cost": 0.0, "revenue": 0.0})
        row["events"] += 1
        for name in ("impressions", "clicks", "cost", "revenue"):
            row[name] += m.get(name, 0)
        row["conversions"] += m.get("conversions", 1 if e["event_type"] == "conversion" else 0)
    return out


def wait_for(check: Any, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met after {timeout_s} s")
        time.sleep(0.3)


def lines(events: list[dict[str, Any]]) -> list[bytes]:
    return [json.dumps(e).encode() for e in events]

"""The API on real Ray Serve over a real chDB warehouse holding known rows, shared by the whole session.

`serve_api` writes seeded rows for three tenants through the pipeline's own table DDL (so tests know
every number exactly), starts a StoreActor, deploys `serve_apps.query` on a free port and yields an
`ApiServer`: its `url`, `token(tenant, role)`, `get(path, ...)`, and the `rows` it wrote, per table.
The session broker backs the settings' Kafka section (topics created), for routes that produce.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pyarrow as pa
import pytest
import ray
from ray import serve

from actors.store import start_store_actor
from mkt_ray.attribution import ONLINE_MODELS
from mkt_ray.embedded import EmbeddedBroker, free_port
from mkt_ray.kafka import create_topics
from mkt_ray.pipeline import ATTRIBUTION, KPI, QUARANTINE, pipeline_ddl
from mkt_ray.pipeline._attribution import CREDIT_TABLE_SCHEMA
from mkt_ray.pipeline._closing import ALERT_SCHEMA, SIGNAL_SCHEMA
from mkt_ray.pipeline._tables import ALERTS, KPI_SCHEMA, QUARANTINE_SCHEMA, SIGNALS
from mkt_ray.settings import KafkaSettings, Settings, load_settings
from serve_apps.auth import issue_token

TENANTS = ("acme", "globex", "initech")
T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
CHANNELS = ("google_ads", "meta", "email", "(direct)")
_KINDS = {"tumbling_1m": 60_000, "tumbling_1h": 3_600_000, "sliding_5m": 60_000}  # kind: start step


@dataclass
class ApiServer:
    url: str
    settings: Settings
    store_name: str
    namespace: str
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def token(self, tenant: str, role: str = "admin", **kwargs: Any) -> str:
        return issue_token(self.settings.api.secret.get_secret_value(), tenant, role, **kwargs)

    def get(self, path: str, tenant: str = "acme", role: str = "admin", **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token(tenant, role)}"}
        return httpx.get(self.url + path, headers=headers, timeout=60, **kwargs)


def seed_rows(seed: int = 11) -> dict[str, list[dict[str, Any]]]:
    """Deterministic rows per table; campaigns and persons are reused across tenants on purpose, so a
    missing tenant filter shows up as wrong numbers, and some ids hold quotes and SQL."""
    rng = random.Random(seed)
    campaigns = ("spring", "summer", "x' OR '1'='1", "c-4")
    sources = ("google", "meta", "email")
    rows: dict[str, list[dict[str, Any]]] = {KPI: [], ATTRIBUTION: [], QUARANTINE: [], ALERTS: [], SIGNALS: []}
    offset = 0
    for tenant in TENANTS:
        for kind, step in _KINDS.items():
            for _ in range(120 if kind == "tumbling_1h" else 400):
                offset += 1
                impressions = rng.randint(0, 500)
                clicks = rng.randint(0, min(impressions, 60))
                conversions = rng.randint(0, clicks)
                rows[KPI].append({
                    "window": kind, "tenant_id": tenant, "campaign_id": rng.choice(campaigns),
                    "source": rng.choice(sources), "window_start_ms": T0_MS + rng.randrange(86_400_000 // step) * step,
                    "events": impressions + clicks + conversions, "impressions": impressions, "clicks": clicks,
                    "conversions": conversions, "cost": round(rng.uniform(0, 90), 2),
                    "revenue": round(rng.uniform(0, 300), 2) if conversions else 0.0,
                    "partition": offset % 4, "first_offset": offset, "last_offset": offset, "applied_ms": T0_MS})
        for n in range(60):
            offset += 1
            person = f"person-{n % 15}"
            conversion_ts = T0_MS + rng.randrange(0, 86_400_000)
            touches = [(rng.choice(CHANNELS[:3]), rng.choice(campaigns), conversion_ts - rng.randrange(1, 10**7))
                       for _ in range(rng.randint(0, 3))] or [("(direct)", None, None)]
            value = round(rng.uniform(5, 200), 2)
            for model in ONLINE_MODELS:
                weights = [rng.random() for _ in touches]
                for i, ((channel, campaign, ts), w) in enumerate(zip(touches, weights, strict=True)):
                    share = w / sum(weights) if model != "linear" else 1 / len(touches)
                    rows[ATTRIBUTION].append({
                        "tenant_id": tenant, "conversion_id": f"conv-{offset}", "person": person, "model": model,
                        "channel": channel, "campaign_id": campaign, "touch_ts_ms": ts, "conversion_ts_ms": conversion_ts,
                        "weight": share, "conversions_credit": share, "revenue_credit": share * value,
                        "fallback": False, "partition": 0, "offset": offset, "touch_index": i})
        for n in range(25):
            offset += 1
            rows[QUARANTINE].append({"reason": rng.choice(("invalid_json", "schema_violation", "too_old")),
                                     "tenant_id": tenant, "raw": f'{{"tenant_id": "{tenant}", "n": {n}}}'.encode(),
                                     "partition": 1, "offset": offset, "quarantined_ms": T0_MS + n})
        for n in range(12):
            start = T0_MS + n * 3_600_000
            rows[ALERTS].append({"rule": rng.choice(("ctr_below", "cpa_above")), "tenant_id": tenant,
                                 "window": "tumbling_1h", "campaign_id": rng.choice(campaigns), "source": "google",
                                 "window_start_ms": start, "window_end_ms": start + 3_600_000, "value": rng.random(),
                                 "threshold": 0.5, "impressions": 100 + n, "closed_ms": start + 3_700_000})
            base = {"tenant_id": tenant, "window": "tumbling_1h", "campaign_id": f"q{n}", "source": "meta",
                    "window_start_ms": start, "window_end_ms": start + 3_600_000, "events": 1, "impressions": 1,
                    "clicks": 2, "conversions": 0, "cost": 0.0, "revenue": 0.0, "ctr": 2.0, "cvr": 0.0, "cpa": 0.0,
                    "roas": 0.0, "closed_ms": start}
            rows[SIGNALS].append({"kind": "quality", "rule": "clicks_exceed_impressions", **base})
            rows[SIGNALS].append({"kind": "window", "rule": "", **base})
    return rows


_SCHEMAS = {KPI: KPI_SCHEMA, ATTRIBUTION: CREDIT_TABLE_SCHEMA, QUARANTINE: QUARANTINE_SCHEMA,
            ALERTS: ALERT_SCHEMA, SIGNALS: SIGNAL_SCHEMA}


@pytest.fixture(scope="session")
def serve_api(ray_session: None, broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    tag = uuid.uuid4().hex[:8]
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap, topic_events=f"api-events-{tag}",
                          topic_quarantine=f"api-quarantine-{tag}", topic_signals=f"api-signals-{tag}",
                          topic_alerts=f"api-alerts-{tag}")
    settings = load_settings(data_dir=tmp_path_factory.mktemp("api"), kafka=kafka).with_tenants(list(TENANTS))
    create_topics(kafka.client_config(), kafka)
    store_name, namespace = f"mkt-store-api-{tag}", ray.get_runtime_context().namespace
    store = start_store_actor(settings, name=store_name)
    for statement in pipeline_ddl(settings.warehouse.database):
        ray.get(store.execute.remote(statement))
    rows = seed_rows()
    for table, items in rows.items():
        ray.get(store.insert_arrow.remote(table, pa.Table.from_pylist(items, schema=_SCHEMAS[table])))
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    from serve_apps.query import build_app

    serve.run(build_app(settings, (store_name, namespace)), name="mkt-api", route_prefix="/")
    try:
        yield ApiServer(f"http://127.0.0.1:{port}", settings, store_name, namespace, rows)
    finally:
        serve.shutdown()
        ray.get(store.close.remote())
        ray.kill(store)

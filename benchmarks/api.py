"""Query API latency: `campaigns/performance` over HTTP at 10 and 50 concurrent clients, beside chDB direct.

    python -m benchmarks.api [--days 30] [--campaigns 5] [--requests 600] [--seconds 20] [--seed 7] [--rate 200]

Prints one JSON line. One tenant holds `--days` of 1-minute windows (43,200 per campaign for 30 days)
for `--campaigns` campaigns, written through the pipeline's table DDL. Each request asks for one seeded
random hour at 1-minute granularity (`granularity=1m&from&to&limit=100`: 60 windows x campaigns, first
page), the query a dashboard drilling into an hour makes.

API side: the platform as `mkt-ray up` runs it (`actors.launcher.Platform` with default settings: the
embedded broker, a local Ray with 2 CPUs, the StoreActor owning chDB, tenant shards, the ingest actor, and
the query API on Serve, one replica serving HTTP itself (direct ingress), its pages from the replica's
read model of kpi_windows), and per concurrency level `--requests` requests from asyncio clients
(aiohttp, one connection per client), or more, until `--seconds` have passed, after a warm-up. It runs
twice: idle, then while `mkt-ray up`'s synthetic traffic is produced at `--rate` events/s (to this
tenant and two others, timestamped now) and the pipeline ingests it, measured once two 5-second chunks
are applied (past the first batches); `pipeline` says how many messages it applied meanwhile and its
event-to-KPI latency. Reported: requests/s, p50 and p99 latency (wall clock, ms), and the CPU
milliseconds per request of this process tree, by process (`benchmarks._cpu`: the clients are the
`driver`; while ingesting the pipeline's CPU is in it too), which stay meaningful when other work shares
the machine (its CPU is `other_processes_cpu_s`); latencies do not. `api_settings` says which serving
path ran (`direct_ingress`, `read_model_rows`; `MKT_API__DIRECT_INGRESS=false` and
`MKT_API__READ_MODEL_ROWS=0` run Serve's proxy and SQL per request instead).

Baseline: the same SQL and parameters (`serve_apps._queries.performance_page`) against an in-process chDB
holding the same rows, one query at a time: no HTTP, no Serve, no Ray hop, no auth, no ingest. The gap
between the two is what the serving path costs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import json
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pyarrow as pa

from benchmarks._cpu import CpuSampler
from mkt_ray.embedded import free_port
from mkt_ray.pipeline import KPI, pipeline_ddl
from mkt_ray.pipeline._tables import KPI_SCHEMA
from mkt_ray.settings import load_settings
from mkt_ray.warehouse import ChdbWarehouse
from serve_apps._queries import PerformanceQuery, Span, performance_page
from serve_apps._scope import TenantReader, WarehouseRunner
from serve_apps.auth import issue_token

T0_MS = 1_764_547_200_000  # 2025-12-01T00:00:00Z
TENANT = "bench"
TRAFFIC_TENANTS = ["acme", "globex"]  # synthetic traffic goes to these and to TENANT
LEVELS = (10, 50)


def _say(message: str) -> None:
    print(f"benchmarks.api: {message}", file=sys.stderr, flush=True)


def kpi_rows(days: int, campaigns: int, seed: int) -> pa.Table:
    """One tumbling_1m row per campaign and minute for `days` days, plus a little noise of a second tenant."""
    rng = np.random.default_rng(seed)
    minutes = days * 1440
    n = minutes * campaigns
    impressions = rng.integers(0, 400, n)
    clicks = rng.binomial(impressions, 0.05)
    conversions = rng.binomial(clicks, 0.1)
    columns: dict[str, Any] = {
        "window": ["tumbling_1m"] * n, "tenant_id": [TENANT] * n,
        "campaign_id": np.repeat([f"campaign-{c}" for c in range(campaigns)], minutes),
        "source": ["google"] * n, "window_start_ms": np.tile(T0_MS + np.arange(minutes) * 60_000, campaigns),
        "events": impressions + clicks + conversions, "impressions": impressions, "clicks": clicks,
        "conversions": conversions, "cost": rng.uniform(0, 20, n).round(2), "revenue": (conversions * 40.0),
        "partition": np.zeros(n, np.int32), "first_offset": np.arange(n), "last_offset": np.arange(n),
        "applied_ms": np.full(n, T0_MS)}
    return pa.Table.from_pydict(columns, schema=KPI_SCHEMA)


def hours(days: int, count: int, seed: int) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    return [(start := T0_MS + rng.randrange(days * 24) * 3_600_000, start + 3_600_000) for _ in range(count)]


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat()


def _stats(latencies_s: list[float], sampler: CpuSampler, start_s: float, end_s: float) -> dict[str, Any]:
    """Throughput and latency (wall clock), and CPU per request of this process tree by process (CPU time,
    so it holds on a busy machine; `other_processes_cpu_s` says how busy it was)."""
    lat = np.array(latencies_s) * 1000
    sampler.sample()
    by_title, machine_s = sampler.usage(start_s, end_s)
    ours = sum(by_title.values())
    return {"requests": len(lat), "requests_per_s": round(len(lat) / (end_s - start_s), 1),
            "p50_ms": round(float(np.percentile(lat, 50)), 2), "p99_ms": round(float(np.percentile(lat, 99)), 2),
            "cpu_ms_per_request": round(ours * 1000 / len(lat), 2),
            "cpu_ms_per_request_by_process": {k: round(v * 1000 / len(lat), 2) for k, v in by_title.items()
                                              if v * 1000 / len(lat) >= 0.05},
            "other_processes_cpu_s": round(machine_s - ours, 2)}


async def _client_run(url: str, token: str, spans: list[tuple[int, int]], clients: int,
                      min_s: float = 0.0) -> list[float]:
    """Each client sends its next request when the last one is answered, through `spans` and round again
    until `min_s` seconds have passed. aiohttp rather than httpx: the clients took 1.0 instead of 2.5 CPU
    ms per request, CPU the server shares on a 2-core machine."""
    deadline = time.perf_counter() + min_s
    position = itertools.count()
    latencies: list[float] = []

    async def client() -> None:
        connector = aiohttp.TCPConnector(limit=1)
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(url, connector=connector, headers=headers) as http:
            while (n := next(position)) < len(spans) or time.perf_counter() < deadline:
                lo, hi = spans[n % len(spans)]
                started = time.perf_counter()
                params = {"granularity": "1m", "from": _iso(lo), "to": _iso(hi), "limit": "100"}
                async with http.get(f"/v1/tenants/{TENANT}/campaigns/performance", params=params) as response:
                    body = await response.read()
                latencies.append(time.perf_counter() - started)
                if response.status != 200 or len(json.loads(body)["items"]) != 100:
                    raise RuntimeError(f"unexpected answer {response.status}: {body[:300]!r}")

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies


def _levels(url: str, token: str, spans: list[tuple[int, int]], sampler: CpuSampler, min_s: float) -> dict[str, Any]:
    results = {}
    for clients in LEVELS:
        _say(f"{len(spans)} requests or more, for {min_s:.0f} s at least, from {clients} concurrent clients")
        started = time.time()
        latencies = asyncio.run(_client_run(url, token, spans, clients, min_s))
        results[f"clients_{clients}"] = _stats(latencies, sampler, started, time.time())
    return results


def _ingest_stats(before: dict[str, Any], after: dict[str, Any], seconds: float) -> dict[str, Any]:
    """What the pipeline did while the clients ran: messages applied and the event-to-KPI latency."""
    applied = after["read"] - before["read"]
    return {"messages_applied": applied, "messages_per_s": round(applied / seconds, 1),
            "kpi_latency_ms": {k: round(v, 1) for k, v in after["latency_ms"].items()}}


def run_api(table: pa.Table, data_dir: Path, spans: list[tuple[int, int]], sampler: CpuSampler,
            rate: float, min_s: float) -> dict[str, Any]:
    """The platform as `mkt-ray up` runs it (broker, Ray, store, shards, ingest, the API on Serve), measured
    idle and then while synthetic traffic is produced at `rate` events/s and ingested."""
    import ray

    from actors.launcher import Platform
    from mkt_ray.cli._up import TRAFFIC_CHUNK_S, synthetic_traffic

    settings = load_settings(data_dir=data_dir / "api", serve_port=free_port()).with_tenants([TENANT, *TRAFFIC_TENANTS])
    with Platform(settings, say=_say) as platform:
        ray.get(platform.store.insert_arrow.remote(KPI, table))
        platform.wait_until_assigned()
        url = platform.start_serve(settings.serve_host, settings.serve_port)
        token = issue_token(settings.api.secret.get_secret_value(), TENANT, "cmo")
        asyncio.run(_client_run(url, token, spans[:50], 5))  # warm-up: connections, query cache of the parser
        results: dict[str, Any] = {"idle": _levels(url, token, spans, sampler, min_s)}
        _say(f"synthetic traffic at {rate:.0f} events/s for tenants {', '.join([TENANT, *TRAFFIC_TENANTS])}")
        stop = threading.Event()
        traffic_args = argparse.Namespace(rate=rate, max_events=10**9)
        traffic = threading.Thread(target=synthetic_traffic, args=(platform, [TENANT, *TRAFFIC_TENANTS], traffic_args, stop),
                                   daemon=True, name="traffic")
        traffic.start()
        try:
            # steady state: past the first chunks of traffic (first batches, first windows closed)
            platform.wait_until_read(int(rate * 2 * TRAFFIC_CHUNK_S) + 1, timeout_s=120)
            before, started = platform.stats(), time.monotonic()
            results["ingesting"] = _levels(url, token, spans, sampler, min_s)
            results["ingesting"]["pipeline"] = _ingest_stats(before, platform.stats(), time.monotonic() - started)
        finally:
            stop.set()
            traffic.join(timeout=30)
        return results


def run_baseline(table: pa.Table, data_dir: Path, spans: list[tuple[int, int]], sampler: CpuSampler) -> dict[str, Any]:
    warehouse = ChdbWarehouse(data_dir / "direct", "mkt")
    try:
        for statement in pipeline_ddl("mkt"):
            warehouse.execute(statement)
        warehouse.insert_arrow(KPI, table)
        reader = TenantReader(WarehouseRunner(warehouse), "mkt", TENANT)

        async def one(lo: int, hi: int) -> float:
            started = time.perf_counter()
            page, _ = await performance_page(reader, PerformanceQuery(Span(lo, hi), "1m", limit=100), None)
            assert page.num_rows == 100
            return time.perf_counter() - started

        async def run_all(selected: list[tuple[int, int]]) -> list[float]:
            return [await one(lo, hi) for lo, hi in selected]

        asyncio.run(run_all(spans[:50]))
        started = time.time()
        latencies = asyncio.run(run_all(spans))
        return _stats(latencies, sampler, started, time.time())
    finally:
        warehouse.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.api", description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--campaigns", type=int, default=5)
    parser.add_argument("--requests", type=int, default=600, help="requests per concurrency level")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rate", type=float, default=200.0,
                        help="synthetic events/s ingested during the second run (`mkt-ray up --rate`'s default)")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="each concurrency level runs at least this long (the ingesting run spans several batches)")
    args = parser.parse_args(argv)
    table = kpi_rows(args.days, args.campaigns, args.seed)
    spans = hours(args.days, args.requests, args.seed)
    _say(f"{table.num_rows:,} one-minute window rows ({args.days} days x {args.campaigns} campaigns)")
    # Ray prints errors its processes report to the driver's stdout (a Serve controller killed at shutdown
    # says so): stdout carries only the result line
    with tempfile.TemporaryDirectory(prefix="mkt-bench-api-") as tmp, CpuSampler(None) as sampler, \
            contextlib.redirect_stdout(sys.stderr):
        _say("baseline: the same query on in-process chDB, one at a time")
        baseline = run_baseline(table, Path(tmp), spans, sampler)
        _say("API: the platform (Ray Serve + StoreActor + pipeline), idle, then ingesting")
        api = run_api(table, Path(tmp), spans, sampler, args.rate, args.seconds)
    api_settings = load_settings().api
    print(json.dumps({"benchmark": "api", "tenant_windows_1m": args.days * 1440, "campaigns": args.campaigns,
                      "api_settings": {"direct_ingress": api_settings.direct_ingress,
                                       "read_model_rows": api_settings.read_model_rows,
                                       "read_model_staleness_ms": api_settings.read_model_staleness_ms},
                      "rows": table.num_rows, "query": "campaigns/performance granularity=1m, one hour, limit=100",
                      "api": api, "baseline_chdb_direct": baseline}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

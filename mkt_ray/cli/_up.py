"""`mkt-ray up`: the long-running platform, with synthetic traffic unless --no-demo."""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import io
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from mkt_ray.errors import MktRayError
from mkt_ray.kafka import produce_lines
from mkt_ray.pipeline import tenant_key
from mkt_ray.settings import load_settings
from mkt_ray.workload import generate_workload
from serve_apps.auth import issue_token

DEMO_TENANTS = ["acme", "globex", "initech"]
TRAFFIC_CHUNK_S = 5.0  # synthetic traffic is produced in chunks of this many seconds (benchmarks.api reuses it)


def _say(message: str) -> None:
    print(f"mkt-ray: {message}", file=sys.stderr, flush=True)


def run_up(args: argparse.Namespace) -> int:
    from actors.launcher import Platform
    from actors.preflight import check_port_free
    from actors.supervise import MemberRestarts

    settings = load_settings(args.config)
    tenants = args.tenants or list(settings.tenants) or DEMO_TENANTS
    settings = settings.with_tenants(tenants)
    check_port_free(settings.serve_host, settings.serve_port)  # before minutes of start-up, not after
    # Ctrl-C stops everything even where SIGINT started ignored (a shell script's background job)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with contextlib.suppress(io.UnsupportedOperation, ValueError):  # stderr without a file descriptor: no dumps
        faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 PID`: every thread's stack to stderr
    # Serve's INFO lines name the port of its own proxy, not the API's (the banner says where everything is);
    # a filter, since Serve sets its logger's level and handlers again as it starts
    logging.getLogger("ray.serve").addFilter(lambda record: record.levelno >= logging.WARNING)
    stop = threading.Event()
    with Platform(settings, dashboard=True) as platform:
        platform.wait_until_assigned()
        platform.start_serve(settings.serve_host, settings.serve_port)
        traffic = None
        if not args.no_demo:
            traffic = threading.Thread(target=synthetic_traffic, args=(platform, tenants, args, stop), daemon=True, name="traffic")
            traffic.start()
        _banner(platform, tenants, args)
        try:
            quality = _quality_schedule(platform)
            restarts = MemberRestarts()
            while True:
                time.sleep(args.status_every)
                platform.check_health()  # the broker or Ray's node ended: stop, saying so
                for line in restarts.check(platform.ingest):
                    _say(line)
                _status(platform)
                _daily_quality_report(platform, quality)
        except (KeyboardInterrupt, SystemExit):
            _say("stopping (Ctrl-C) ... (Ctrl-C again to leave at once)")
        finally:
            stop.set()
            if traffic is not None:
                traffic.join(timeout=TRAFFIC_CHUNK_S * 2)
    _say("stopped; nothing left running")
    return 0


def _banner(platform: Any, tenants: list[str], args: argparse.Namespace) -> None:
    s = platform.settings
    lines = [
        "mkt-ray is up",
        f"  Kafka bootstrap    {platform.bootstrap}   topics: {s.kafka.topic_events}, {s.kafka.topic_quarantine}",
        f"  Ray dashboard      {platform.dashboard_url or '(not started)'}",
        f"  warehouse (chDB)   {s.chdb_path.resolve()}   tables: {s.warehouse.database}.kpi_windows, {s.warehouse.database}.quarantine",
        f"  raw Parquet        {os.path.abspath(s.raw_uri)}",
        f"  query API          {platform.api_url}/docs   tokens: mkt-ray token TENANT ROLE",
        f"  dashboard          {platform.api_url}/dashboard#tenant={tenants[0]}&token="
        + issue_token(s.api.secret.get_secret_value(), tenants[0], "cmo", s.api.token_ttl_s),
        f"  tenants            {', '.join(tenants)}",
        f"  traffic            {'none (--no-demo): produce to ' + s.kafka.topic_events if args.no_demo else f'synthetic, {args.rate:.0f} events/s'}",
        "  status every " + f"{args.status_every:.0f} s below; Ctrl-C stops everything",
    ]
    print("\n".join(lines), file=sys.stderr, flush=True)


def _status(platform: Any) -> None:
    import ray

    try:
        stats = platform.stats(member_errors=False)  # a member failing now is restarted at the next check
    except (ray.exceptions.ActorUnavailableError, ray.exceptions.ActorDiedError) as exc:
        _say(f"an ingest member is being restarted by Ray ({type(exc).__name__}); status at the next tick")
        return
    kpis = platform.kpi_totals()
    backlog = platform.backlog()
    rss = _rss_mb(platform.broker.pid) if platform.broker else None
    members = [] if platform.settings.ray_address else [_rss_mb(pid) for pid in stats["member_pids"]]  # local Ray only
    per_tenant = "; ".join(f"{t}: {k['impressions']:,} impr, {k['clicks']:,} clicks, {k['conversions']:,} conv, "
                           f"${k['revenue']:,.0f} rev" for t, k in kpis.items())
    _say(
        f"read {stats['read']:,}  valid {stats['valid']:,}  quarantined {stats['quarantined']:,}  "
        f"duplicate {stats['duplicate']:,}" + _latency(stats)
        + ("  backlog ? (Kafka did not answer)" if backlog is None else f"  backlog {backlog:,}")
        + (f"  broker RSS {rss:.0f} MB" if rss else "")
        + (f"  members RSS {sum(members):,.0f} MB" if members and None not in members else "") + f"\n    {per_tenant}"
    )


def _latency(stats: dict[str, Any]) -> str:
    latency = stats["latency_ms"]
    return f"  latency p50 {latency['kpi_p50']:.0f} ms p99 {latency['kpi_p99']:.0f} ms" if latency else ""


def _quality_schedule(platform: Any) -> Any:
    from training.quality_report import QualitySchedule

    return QualitySchedule(platform.settings.observability.quality_report_hour_utc)


def _daily_quality_report(platform: Any, schedule: Any) -> None:
    """The previous day's data-quality report, once a day, through the store actor (the warehouse's owner)."""
    from training._jobs import StoreClient

    try:
        done = schedule.run_if_due(StoreClient(platform.store), platform.settings)
    except MktRayError as exc:  # the platform keeps running; the report is tried again at the next tick
        _say(f"data-quality report failed: {exc}")
        return
    if done is not None:
        day, report = done
        seen = f"{len(report)} tenant(s)" if report else "no events that day"
        _say(f"data-quality report for {day} ({seen}): {platform.settings.data_dir / 'quality'}/quality-{day}.html")


def _rss_mb(pid: int | None) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            line = next(x for x in status if x.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024
    except (OSError, StopIteration, TypeError):
        return None


def synthetic_traffic(platform: Any, tenants: list[str], args: argparse.Namespace, stop: threading.Event,
                      clock: Callable[[], float] = time.time) -> None:
    """Produce synthetic events in chunks of a few seconds, timestamped around now, until stopped."""
    per_chunk = max(1, int(args.rate * TRAFFIC_CHUNK_S))
    # one seed per chunk, counting up from the clock's seconds (a chunk takes several): event ids carry the
    # seed, so they never repeat an earlier run's, which a platform restarted on the same Kafka would drop
    sent, seed = 0, int(clock())
    while not stop.is_set() and sent < args.max_events:
        started = time.monotonic()
        lines = list(generate_workload(per_chunk, tenants, seed, datetime.now(UTC), span_hours=TRAFFIC_CHUNK_S / 3600))
        sent += produce_lines(platform.kafka_conf, platform.settings.kafka.topic_events, lines, tenant_key)
        seed += 1
        if sent < args.max_events:  # the last chunk sent: say so at once
            stop.wait(max(0.0, TRAFFIC_CHUNK_S - (time.monotonic() - started)))
    if sent >= args.max_events:
        _say(f"synthetic traffic stopped after {sent:,} events (--max-events bounds the in-memory broker)")

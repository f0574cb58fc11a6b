"""`mkt-ray demo`: the embedded platform over a JSONL file, reported as one JSON line on stdout."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mkt_ray.cli._token import demo_tokens
from mkt_ray.errors import InputError
from mkt_ray.kafka import produce_lines
from mkt_ray.pipeline import tenant_key
from mkt_ray.settings import RawStoreSettings, load_settings


def read_messages(path: Path) -> list[bytes]:
    """Every line of the file as one message (the newline removed; a final empty line is not a message);
    an empty file is refused."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        raise InputError(f"{path} is empty: nothing to produce (one event a line; `mkt-ray generate` writes such files)")
    return lines


def _say(message: str) -> None:
    print(f"mkt-ray: {message}", file=sys.stderr, flush=True)


def run_demo(args: argparse.Namespace) -> int:
    from actors.launcher import Platform  # Ray is imported only by the commands that need it

    messages = read_messages(args.input)
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="mkt-ray-demo-"))
    overrides: dict[str, Any] = {"data_dir": data_dir}
    if args.raw_dir:
        overrides["raw_store"] = RawStoreSettings(uri=str(args.raw_dir))
    settings = load_settings(args.config, **overrides).with_tenants(args.tenants)
    started = time.monotonic()
    try:
        with Platform(settings) as platform:
            platform.wait_until_assigned()
            _say(f"producing {len(messages):,} messages from {args.input}")
            produce_lines(platform.kafka_conf, settings.kafka.topic_events, messages, tenant_key)
            stats = platform.wait_until_read(len(messages), args.timeout)
            report = _report(platform, stats, len(messages), time.monotonic() - started)
            if args.hold > 0:  # the API is up while the platform is held
                platform.start_serve(settings.serve_host, settings.serve_port)
            report["api"] = {"url": platform.api_url, "tokens": demo_tokens(settings, args.tenants)}
            _say(f"ingest time by phase (s, all members): {stats['phase_s']}")
            print(json.dumps(report) if args.json else json.dumps(report, indent=2), flush=True)
            if args.hold > 0:
                _say(f"holding the platform up for {args.hold:.0f} s (Ctrl-C to stop)")
                time.sleep(args.hold)
    finally:
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0


def _report(platform: Any, stats: dict[str, Any], events_read: int, wall_s: float) -> dict[str, Any]:
    kpis = platform.kpi_totals()
    reasons = platform.quarantine_counts()
    span_s = max((stats["last_applied_ms"] - stats["first_consumed_ms"]) / 1000, 1e-3)
    return {
        "events_read": events_read,
        "events_valid": sum(t["events"] for t in kpis.values()),
        "events_quarantined": sum(reasons.values()),
        "events_duplicate": stats["duplicate"],
        "quarantine_reasons": reasons,
        "kpis": {tenant: {k: v for k, v in totals.items() if k != "events"} for tenant, totals in kpis.items()},
        "attribution": platform.attribution_totals(),
        # credits are written with the batch's KPI rows, before its commit: the same event-to-warehouse latency
        "latency_ms": {**{name: round(value, 1) for name, value in stats["latency_ms"].items()},
                       **{name.replace("kpi", "attribution"): round(value, 1) for name, value in stats["latency_ms"].items()}},
        "wall_s": round(wall_s, 3),
        "events_per_s": round(events_read / span_s, 1),
    }

"""The whole pipeline (Kafka -> ingest actors -> KPI windows in the warehouse) against Quix Streams, side by side.

    python -m benchmarks.pipeline [--events 1000000] [--tenants 8] [--seed 7] [--ingest-actors 2] [--partitions 12]
        [--shards 2] [--batch-size 100000] [--no-attribution] [--forgotten 0] [--skip-quix]

Prints one JSON line on stdout (progress goes to stderr). One embedded broker serves the whole run. The
seeded workload (no invalid events, no duplicates, so both sides sum exactly the same events) is produced
into a fresh topic before any consumer starts; then mkt-ray (`actors.launcher.Platform`) drains it, and
after it has stopped the Quix baseline (benchmarks/_quix.py) drains the same topic with its own group,
one after the other so they never share the cores. Both sides' per (tenant, campaign, 1-minute window)
sums must be equal (ints exactly, floats to rel 1e-9), and mkt-ray's per-tenant totals must equal the
workload's ground truth.

What is measured, for mkt-ray:
- `wall_s`: first message consumed (earliest `first_consumed_ms` of the members) to the last batch
  applied (latest `last_applied_ms`), checked against the warehouse ledger reaching the end offsets;
  `events_per_s` = events / wall_s; `events_per_s_incl_startup` counts from before `Platform` starts.
- `cpu_s`: user + system CPU of this process and all its descendants (Ray's GCS, raylet, workers, the
  store actor's chDB) over that span, from /proc/<pid>/stat sampled every 0.1 s (the broker apart, in
  `broker_cpu_s`); `cpu_s_by_process` splits it by process title.
- `latency_ms`: the members' event-to-warehouse latency (applied time - Kafka produce time). The topic
  is preloaded, so it includes the time events waited in Kafka for the platform to start and for the
  backlog ahead of them: it describes draining a backlog, not steady-state latency.
- `members`: each ingest member's partitions and messages; `member_phase_s`: the members' wall seconds
  per phase, summed over members: in the member thread consume (Kafka fetch; its wall time includes
  waiting for messages), lag_metrics, decode (with enrichment, attribution and the Arrow tables of the
  raw archive and the shard hop), late_rows, checkpoint and wait_for_writer (the previous batch not yet
  committed); in the writer thread window rows on the shards, raw archive, attribution and KPI inserts,
  commit, window closing; `member_phase_cpu_s`: the
  CPU seconds of the thread that ran each phase (Arrow's own threads, e.g. the Parquet writer's, are in
  `cpu_s_by_process` only); `member_thread_cpu_s`: the members' processes' CPU seconds by thread, from
  all partitions assigned to the last message applied: the member thread, the writer, the archive thread
  and its Parquet writers, librdkafka's threads, and the rest (Ray's core worker, Arrow's pool).
- `where_time_goes`: the CPU per event of one batch's steps run in this process (decode, KPI rows,
  attribution, the hop to the shards, raw Parquet archive), beside the platform's CPU per event, and two
  parsers alone for reference: msgspec's into `WireEvent` (the decoder's parse), and Arrow's native JSON reader.
- `other_processes_cpu_s` (both sides): CPU used meanwhile by processes outside the run; well above 0
  means the machine was shared and the rates are low.
Quix's `cpu_s` is sampled the same way over its processing span; `cpu_s_incl_startup` is its whole run.

Platform shape: 2 ingest members, 2 shards, batches of up to 100k messages (per-batch costs shrink per
event as batches grow: the raw archive writes one Parquet file per tenant, date and event type of a batch
slice, at ~1 ms a file; a batch's KPI rows, store inserts and close pass scale with its windows, not its
events; a batch of 100k events is a second or two of work, a shape for draining a backlog, not for low
latency), and 12 partitions: Kafka places a key by CRC-32 of the key modulo the partition count, and the
8 tenants' keys on 4 partitions put 73% of the events on one partition (one member does 80% of the
work), on 12 the two members get 56% and 44% (`partition_events`, `members` show the split).
`--no-attribution` runs the pipeline without crediting conversions, to see the other phases apart; the
headline figures are the full pipeline's. `--forgotten N` tombstones N persons per tenant before the run
(right to be forgotten; none of them in the workload, so the sums are unchanged): every event is then
checked against its tenant's tombstones, as in a deployment where any deletion was ever requested.

The workload's clock is fixed (`NOW`); the contract's time checks are widened so that the wall-clock date
of a run never quarantines an event.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.json as pajson

from benchmarks._cpu import CpuSampler, cpu_report, member_threads, thread_roles_cpu_s
from mkt_ray.contract import BatchDecoder, Limits, WireEvent
from mkt_ray.embedded import EmbeddedBroker
from mkt_ray.kafka import create_topics, produce_lines, topic_end_offsets
from mkt_ray.pipeline import (
    PartitionState,
    attribute_partition,
    kpi_window_rows,
    offset_ranges,
    process_batch,
    shard_tables,
    tenant_key,
    use_system_arrow_pool,
)
from mkt_ray.rawstore import archive_events, identity_hash, save_tombstones, slice_name
from mkt_ray.settings import ContractSettings, KafkaSettings, PipelineSettings, Settings, load_settings
from mkt_ray.workload import generate_workload

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
NAMES = ["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka"]
# wide enough for any run date: a fixed-clock workload is never "future" or "expired"
CONTRACT = ContractSettings(max_future_s=20 * 365 * 86_400.0, retention_days=20 * 365.0)
GOAL = {"events_per_s": 250_000, "speedup": 5}
MEASURES = ("impressions", "clicks", "conversions", "cost", "revenue")
INTS = 3  # impressions, clicks, conversions are integers; cost and revenue floats

WindowKey = tuple[str, str, int]


def _say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def tenant_names(n: int) -> list[str]:
    return NAMES[:n] + [f"tenant-{i}" for i in range(len(NAMES), n)]


# ---------------------------------------------------------------- CPU of a process tree, from /proc


def preload(conf: dict[str, Any], kafka: KafkaSettings, lines: list[bytes]) -> dict[int, int]:
    """Create the run's topics, produce every line keyed by tenant, return the end offsets."""
    create_topics(conf, kafka)
    started = time.perf_counter()
    produce_lines(conf, kafka.topic_events, lines, tenant_key)
    ends = topic_end_offsets(conf, kafka.topic_events)
    _say(f"preloaded {sum(ends.values()):,} messages in {time.perf_counter() - started:.1f} s: {ends}")
    if sum(ends.values()) != len(lines):
        raise RuntimeError(f"topic holds {sum(ends.values())} messages, produced {len(lines)}")
    return ends


def run_settings(args: argparse.Namespace, bootstrap: str, tenants: list[str], data_dir: Path) -> Settings:
    tag = uuid.uuid4().hex[:10]
    kafka = KafkaSettings(
        bootstrap_servers=bootstrap, partitions=args.partitions, consumer_group=f"bench-mkt-ray-{tag}",
        topic_events=f"bench-events-{tag}", topic_quarantine=f"bench-quarantine-{tag}",
        topic_signals=f"bench-signals-{tag}", topic_alerts=f"bench-alerts-{tag}",
    )
    pipeline = PipelineSettings(ingest_actors=args.ingest_actors, shards=args.shards, batch_size=args.batch_size,
                                attribution=not args.no_attribution)
    return load_settings(None, data_dir=data_dir, kafka=kafka, pipeline=pipeline, contract=CONTRACT).with_tenants(tenants)


# ---------------------------------------------------------------- the two sides


def run_mkt_ray(
    settings: Settings, ends: dict[int, int], events: int, broker_pid: int | None
) -> tuple[dict[str, Any], dict[WindowKey, list[Any]]]:
    from actors.launcher import Platform  # Ray is imported only when the platform runs

    with CpuSampler(broker_pid) as sampler:
        started = time.time()
        with Platform(settings) as platform:
            platform.wait_until_assigned()
            _say(f"all {settings.kafka.partitions} partitions assigned after {time.time() - started:.1f} s")
            threads_before = member_threads(platform)
            wait_until_applied(platform, ends, timeout_s=max(300.0, events / 2_000))
            # a member counts a batch only after its commit and window closing, which follow the ledger insert
            stats = platform.wait_until_read(events, timeout_s=60.0)
            done = time.time()
            sampler.stop()
            thread_cpu = thread_roles_cpu_s(threads_before, member_threads(platform))
            members, phase_cpu_s = member_counts(platform)
            windows = read_windows(platform, settings.warehouse.database)
    first_s, last_s = stats["first_consumed_ms"] / 1000, stats["last_applied_ms"] / 1000
    if stats["read"] != events or stats["valid"] != events:
        raise RuntimeError(f"mkt-ray read {stats['read']} and accepted {stats['valid']} of {events} events")
    wall_s = last_s - first_s
    return {
        "events_per_s": round(events / wall_s), "events_per_s_incl_startup": round(events / (done - started)),
        "wall_s": round(wall_s, 3), "startup_s": round(first_s - started, 3),
        "latency_ms": {q: round(stats["latency_ms"][f"kpi_{q}"], 1) for q in ("p50", "p99")},
        **cpu_report(sampler, first_s, last_s, events, broker_pid),
        "members": members,
        "member_phase_s": stats.get("phase_s"),  # wall seconds per phase, summed over members
        "member_phase_cpu_s": phase_cpu_s,  # the member threads' CPU seconds in those phases
        "member_thread_cpu_s": thread_cpu,  # the members' processes, every thread, by role
    }, windows


def wait_until_applied(platform: Any, ends: dict[int, int], timeout_s: float) -> None:
    """Block until the warehouse ledger reaches `ends`. Like `Platform.wait_until_applied`, but it reads the
    ledger every 0.5 s, not 0.2 s (each read is a chDB query in the store actor, during the measurement),
    and checks every 5 s that no member died (a dead member never gets there)."""
    targets = {p: end - 1 for p, end in ends.items() if end > 0}
    deadline = time.monotonic() + timeout_s
    next_check = time.monotonic() + 5.0
    while True:
        ledger = platform.ledger()
        if all(ledger.get(p, -1) >= last for p, last in targets.items()):
            return
        if time.monotonic() > next_check:
            stats = platform.stats()  # raises if a member's loop died
            _say(f"applied {stats['read']:,} messages so far")
            next_check += 5.0
        if time.monotonic() > deadline:
            raise TimeoutError(f"ledger {ledger} has not reached {targets} after {timeout_s:.0f} s")
        time.sleep(0.5)


def member_counts(platform: Any) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Each ingest member's partitions and messages read (how evenly the tenants' keys spread), and the
    member threads' CPU seconds per phase, summed over members."""
    import ray

    parts = ray.get([member.stats.remote() for member in platform.ingest])
    cpu: dict[str, float] = {}
    for p in parts:
        for phase, seconds in p.get("phase_cpu_s", {}).items():
            cpu[phase] = cpu.get(phase, 0.0) + seconds
    members = [{"assigned": p["assigned"], "read": p["read"]} for p in parts]
    return members, {k: round(v, 3) for k, v in sorted(cpu.items(), key=lambda kv: -kv[1])}


def read_windows(platform: Any, db: str) -> dict[WindowKey, list[Any]]:
    """mkt-ray's tumbling 1-minute sums per (tenant, campaign, window), summed over sources and batches."""
    rows = platform.query(
        f"SELECT tenant_id, campaign_id, window_start_ms, sum(impressions), sum(clicks), sum(conversions),"
        f" sum(cost), sum(revenue) FROM {db}.kpi_windows WHERE window = 'tumbling_1m'"
        f" GROUP BY tenant_id, campaign_id, window_start_ms"
    )
    return {(t, c, int(w)): [int(v) for v in rest[:INTS]] + [float(v) for v in rest[INTS:]] for t, c, w, *rest in rows}


def run_quix(bootstrap: str, topic: str, events: int, broker_pid: int | None) -> tuple[dict[str, Any], dict]:
    """The Quix baseline; its CPU is sampled like mkt-ray's, over [end - processing time, end] (the end
    taken when the call returns, so the window is late by its clean-up, a few ms)."""
    from benchmarks._quix import run_quix_baseline

    with CpuSampler(broker_pid) as sampler:
        result = run_quix_baseline(bootstrap, topic, events, timeout_s=max(600.0, events / 2_000))
        end_s = time.time()
        sampler.stop()
    processing_s = result["wall_s"] - result["startup_s"]
    return {
        "events_per_s": round(result["events_per_s"]), "wall_s": round(processing_s, 3),
        "startup_s": round(result["startup_s"], 3),
        **cpu_report(sampler, end_s - processing_s, end_s, events, broker_pid),
        "cpu_s_incl_startup": round(result["cpu_s"], 2),
    }, result["windows"]


# ---------------------------------------------------------------- checks and the in-process breakdown


def windows_equal(ours: dict[WindowKey, list[Any]], theirs: dict[WindowKey, list[Any]]) -> bool:
    if ours.keys() != theirs.keys():
        _say(f"window keys differ: {len(ours.keys() - theirs.keys())} only in mkt-ray, "
             f"{len(theirs.keys() - ours.keys())} only in quix")
        return False
    for key, mine in ours.items():
        other = theirs[key]
        if list(mine[:INTS]) != list(other[:INTS]) or not all(
            math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) for a, b in zip(mine[INTS:], other[INTS:], strict=True)
        ):
            _say(f"window {key} differs: mkt-ray {mine}, quix {other}")
            return False
    return True


def totals_match_truth(windows: dict[WindowKey, list[Any]], truth: dict[str, Any]) -> bool:
    totals: dict[str, list[Any]] = {}
    for (tenant, _, _), sums in windows.items():
        total = totals.setdefault(tenant, [0, 0, 0, 0.0, 0.0])
        for i, value in enumerate(sums):
            total[i] += value
    expected = {t: [k[m] for m in MEASURES] for t, k in truth["kpis"].items() if any(k.values())}
    return totals.keys() == expected.keys() and all(
        totals[t][:INTS] == want[:INTS]
        and all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6) for a, b in zip(totals[t][INTS:], want[INTS:], strict=True))
        for t, want in expected.items()
    )


def _cpu_of(step: Callable[[], Any], repeats: int = 3) -> tuple[float, Any]:
    """The least CPU time (this process) of `repeats` runs of `step`, and the last run's result."""
    best, result = math.inf, None
    for _ in range(repeats):
        started = time.process_time()
        result = step()
        best = min(best, time.process_time() - started)
    return best, result


def where_time_goes(
    lines: list[bytes], tenants: list[str], batch: int, shards: int, cpu_us_per_event: float
) -> dict[str, Any]:
    """CPU per event of one batch's steps run in this process (best of 3, after a warm-up batch): msgspec's
    bare parse of the messages into `WireEvent`, as the decoder parses (the floor under the decoder), Arrow's native JSON reader on the
    same messages as newline-delimited JSON on one thread (JSON straight to Arrow columns in C++, nothing
    validated: what a decoder writing Arrow columns directly would start from), decode, KPI rows of every window
    kind, the two as `process_batch`, attribution (every tenant's engine from empty, as one partition's
    batch holding all the tenants: in the pipeline a partition holds fewer), the shards' slices of the valid events, encoded and pickled (what the
    hop to the tenant shards costs the sender), the raw Parquet archive; beside the platform's CPU per event.
    Arrow allocates as in the pipeline's actors (`use_system_arrow_pool`)."""
    use_system_arrow_pool()
    now_ms = int(NOW.timestamp() * 1000)
    limits = Limits.from_settings(CONTRACT)
    timed = lines[batch : 2 * batch] if len(lines) >= 2 * batch else lines[:batch]
    n = len(timed)
    part, offs = np.zeros(n, np.int32), np.arange(n, dtype=np.int64)
    process_batch(BatchDecoder(tenants, limits), lines[:n], part, offs, now_ms)  # warm-up: imports, JIT caches
    parse = msgspec.json.Decoder(WireEvent).decode
    parse_s, _ = _cpu_of(lambda: list(map(parse, timed)))
    ndjson, one_thread = b"\n".join(timed), pajson.ReadOptions(use_threads=False, block_size=1 << 20)
    arrow_json_s, _ = _cpu_of(lambda: pajson.read_json(pa.BufferReader(ndjson), read_options=one_thread))
    decode_s, decoded = _cpu_of(lambda: BatchDecoder(tenants, limits).decode(timed, part, offs, now_ms=now_ms))
    rows_s, _ = _cpu_of(lambda: kpi_window_rows(decoded.events, offset_ranges(part, offs), now_ms))
    batch_s, _ = _cpu_of(lambda: process_batch(BatchDecoder(tenants, limits), timed, part, offs, now_ms))
    hop_s, _ = _cpu_of(lambda: [pickle.dumps(t, protocol=5) for t in shard_tables(decoded.events, shards).values()])
    attribution_s, _ = _cpu_of(lambda: attribute_partition(PartitionState(), decoded.events, {}, -1))
    raw_dir = tempfile.mkdtemp(prefix="bench-raw-")
    try:
        names = iter(range(1_000))
        archive_s, _ = _cpu_of(lambda: archive_events(decoded.events, raw_dir, slice_name(0, next(names), n - 1)))
    finally:
        shutil.rmtree(raw_dir, ignore_errors=True)
    us = 1e6 / n
    return {
        "batch": n, "msgspec_parse_us_per_event": round(parse_s * us, 2),
        "arrow_json_read_us_per_event": round(arrow_json_s * us, 2),
        "decode_us_per_event": round(decode_s * us, 2), "kpi_rows_us_per_event": round(rows_s * us, 2),
        "process_batch_us_per_event": round(batch_s * us, 2), "attribution_us_per_event": round(attribution_s * us, 2),
        "shard_hop_us_per_event": round(hop_s * us, 2),
        "raw_archive_us_per_event": round(archive_s * us, 2), "platform_cpu_us_per_event": cpu_us_per_event,
    }


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--tenants", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--ingest-actors", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--shards", type=int, default=PipelineSettings().shards)
    parser.add_argument("--batch-size", type=int, default=100_000)
    parser.add_argument("--no-attribution", action="store_true",
                        help="run without attribution, to see the other phases apart (not the headline)")
    parser.add_argument("--forgotten", type=int, default=0,
                        help="persons per tenant tombstoned before the run (none in the workload)")
    parser.add_argument("--skip-quix", action="store_true")
    parser.add_argument("--bootstrap", default=None, help="use this broker instead of starting an embedded one")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tenants = tenant_names(args.tenants)
    workload = generate_workload(args.events, tenants, args.seed, NOW, invalid_share=0.0, duplicate_share=0.0)
    lines = list(workload)
    broker = None if args.bootstrap else EmbeddedBroker().start()
    bootstrap, broker_pid = args.bootstrap or broker.bootstrap, broker.pid if broker else None
    data_dir = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    try:
        settings = run_settings(args, bootstrap, tenants, data_dir)
        for tenant in tenants if args.forgotten else ():
            save_tombstones(settings.raw_uri, tenant, [identity_hash(tenant, f"user_id:gone-{i}") for i in range(args.forgotten)])
        ends = preload(settings.kafka.client_config(), settings.kafka, lines)
        partition_events = {str(p): n for p, n in ends.items()}
        mkt, ours = run_mkt_ray(settings, ends, len(lines), broker_pid)
        _say(f"mkt-ray: {mkt['events_per_s']:,} events/s over {mkt['wall_s']} s, {mkt['cpu_s']} CPU s")
        quix, theirs = (None, None) if args.skip_quix else run_quix(bootstrap, settings.kafka.topic_events, len(lines), broker_pid)
        if quix:
            _say(f"quix: {quix['events_per_s']:,} events/s over {quix['wall_s']} s, {quix['cpu_s']} CPU s")
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    mkt["where_time_goes"] = where_time_goes(lines, tenants, args.batch_size, args.shards, mkt["cpu_us_per_event"])
    print(json.dumps({
        "benchmark": "pipeline", "events": len(lines), "seed": args.seed, "tenants": args.tenants,
        "ingest_actors": args.ingest_actors, "partitions": args.partitions, "partition_events": partition_events,
        "shards": args.shards, "batch_size": args.batch_size, "attribution": not args.no_attribution,
        "forgotten_per_tenant": args.forgotten,
        "workload": "generate_workload(invalid_share=0.0, duplicate_share=0.0): every event valid and distinct",
        "cores": os.cpu_count(), "mkt_ray": mkt, "quix": quix,
        "speedup": round(mkt["events_per_s"] / quix["events_per_s"], 2) if quix else None,
        "sums_match": windows_equal(ours, theirs) if theirs is not None else None,
        "truth_match": totals_match_truth(ours, workload.truth),
        "windows": len(ours), "goal": GOAL,
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Duplicate detection: the decoder's DedupIndex against a dict of the ids themselves, on the same seeded ids.

    python -m benchmarks.dedup [--ids 2000000] [--batch 10000] [--tenants 4] [--seed 7]

Prints one JSON line. Both sides run in this process on one core (CPU time, `time.process_time`) over the
same stream: UUID-text event ids (36 characters) spread over `--tenants` tenants, one event a millisecond
(so the 24 h window holds every id), 1% repeats of an earlier id. The baseline is the straightforward
index, one dict of `event_id -> accepted time` per tenant, deciding row by row; its memory counts the
dicts and the strings and ints they keep alive (in the pipeline nothing else holds a decoded id). Bytes
per id are over the ids within the window at the end (`--window-s` shorter than the stream gives the
steady state, where older ids have been dropped); the baseline's figure is per id it holds.
`flags_match` says both marked exactly the same events.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid

import numpy as np

from mkt_ray.contract import DedupIndex


def workload(ids: int, tenants: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    event_ids = np.array([str(uuid.UUID(int=int(x))) for x in rng.integers(0, 2**63, ids, dtype=np.uint64)], object)
    repeats = rng.random(ids) < 0.01
    names = np.array([f"tenant-{i}" for i in range(tenants)], object)[rng.integers(0, tenants, ids)]
    originals = (rng.random(int(repeats.sum())) * np.flatnonzero(repeats)).astype(np.int64)  # an earlier event
    event_ids[repeats], names[repeats] = event_ids[originals], names[originals]
    return names, event_ids, 1_795_000_000_000 + np.arange(ids, dtype=np.int64)


def dict_index(tenants: np.ndarray, event_ids: np.ndarray, ts_ms: np.ndarray, seen: dict, highest: dict,
               window_ms: int) -> list[bool]:
    out = []
    for tenant, event_id, ts in zip(tenants.tolist(), event_ids.tolist(), ts_ms.tolist(), strict=True):
        ids = seen.setdefault(tenant, {})
        highest[tenant] = mark = max(highest.get(tenant, ts), ts)
        first = ids.get(event_id)
        duplicate = first is not None and first >= mark - window_ms
        if not duplicate:
            ids[event_id] = ts
        out.append(duplicate)
    return out


def dict_bytes(seen: dict[str, dict[str, int]]) -> int:
    return sum(sys.getsizeof(ids) + sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in ids.items())
               for ids in seen.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dedup", description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, default=2_000_000, help="events in the stream")
    parser.add_argument("--batch", type=int, default=10_000, help="events per decoder batch")
    parser.add_argument("--tenants", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--window-s", type=int, default=86_400,
                        help="dedup window; shorter than the stream (an event a millisecond) for a steady state")
    args = parser.parse_args(argv)
    tenants, event_ids, ts_ms = workload(args.ids, args.tenants, args.seed)
    batches = [slice(i, i + args.batch) for i in range(0, args.ids, args.batch)]
    DedupIndex().mark_duplicates(tenants[:1], event_ids[:1], ts_ms[:1])  # compiled before the clock starts

    index, ours = DedupIndex(window_ms=args.window_s * 1000), []
    start = time.process_time()
    for part in batches:
        ours.append(index.mark_duplicates(tenants[part], event_ids[part], ts_ms[part]))
    ours_s = time.process_time() - start

    seen: dict[str, dict[str, int]] = {}
    highest: dict[str, int] = {}
    theirs: list[bool] = []
    start = time.process_time()
    for part in batches:
        theirs += dict_index(tenants[part], event_ids[part], ts_ms[part], seen, highest, index.window_ms)
    theirs_s = time.process_time() - start

    held = sum(len(ids) for ids in seen.values())  # the baseline never drops an id, so all of them
    live = sum(sum(ts >= highest[t] - index.window_ms for ts in ids.values()) for t, ids in seen.items())
    flags = np.concatenate(ours)
    report = {
        "benchmark": "dedup",
        "ids": args.ids,
        "tenants": args.tenants,
        "duplicates": int(flags.sum()),
        "ids_in_window": live,
        "flags_match": flags.tolist() == theirs,
        "mkt_ray": {"ns_per_event": round(ours_s / args.ids * 1e9, 1), "bytes_per_id": round(index.nbytes / live, 1)},
        "dict": {"ns_per_event": round(theirs_s / args.ids * 1e9, 1), "bytes_per_id": round(dict_bytes(seen) / held, 1)},
    }
    report["speedup"] = round(theirs_s / ours_s, 2)
    report["memory_ratio"] = round(report["dict"]["bytes_per_id"] / report["mkt_ray"]["bytes_per_id"], 2)
    print(json.dumps(report))
    return 0 if report["flags_match"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

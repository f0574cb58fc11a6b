"""`mkt-ray generate`: a deterministic synthetic workload and its ground truth."""

from __future__ import annotations

import argparse
import sys

from mkt_ray.errors import InputError
from mkt_ray.workload import write_workload


def run_generate(args: argparse.Namespace) -> int:
    if args.events < 1:
        raise InputError("--events must be at least 1")
    if not 0 <= args.invalid_share < 1 or not 0 <= args.duplicate_share < 1:
        raise InputError("--invalid-share and --duplicate-share must be in [0, 1)")

    def progress(done: int, total: int) -> None:
        print(f"mkt-ray: generated {done:,} / {total:,} events", file=sys.stderr, flush=True)

    truth = write_workload(
        args.out, args.events, args.tenants, args.seed,
        invalid_share=args.invalid_share, duplicate_share=args.duplicate_share, progress=progress,
    )
    print(
        f"mkt-ray: wrote {truth['events']:,} events to {args.out} ({truth['valid']:,} valid, "
        f"{truth['quarantined']:,} invalid, {truth['duplicates']:,} duplicates); ground truth beside it",
        file=sys.stderr,
    )
    return 0

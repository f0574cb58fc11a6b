"""Train the data-driven attribution model of one tenant and register it.

    python -m training.train_attribution --input RAW_URI --tenant T [--since DATE] [--until DATE]
        --output REGISTRY_URI [--num-workers N] [--num-boost-round R]

also submitted unchanged with `ray job submit --working-dir . -- python -m training.train_attribution ...`.

1. Ray Data reads the columns journeys need of the tenant's user-level raw events of the chosen dates
   (partition filter on tenant_id/date/event_type); an identity pass splits the persons into groups of
   about 300k events (at least one per CPU) and Ray tasks build each group's journeys with the
   platform's attribution engine (training/_journeys.py): converting ones (a conversion and its lookback
   touchpoints) and non-converting ones (a person's uncredited touchpoints at the end of the data).
2. Features per journey (training/_features.py), vectorised over all journeys at once in the driver
   (about 20M journeys/s: a Ray Data stage would cost more in scheduling than it computes); the newest
   20% of journeys by end time are the holdout; train and holdout go to Ray Train as Ray Datasets.
3. Ray Train's `LightGBMTrainer` fits the conversion model data-parallel on `--num-workers` workers of
   one CPU each; holdout AUC, log-loss and calibration by deciles are measured in the driver.
4. Per-channel credit by exact Shapley values of the model over the channels of each converting journey
   (training/_shapley.py says why exact and not TreeSHAP), and the Markov removal effects of the same
   journeys.
5. A new version in the registry (model.txt + entry.json: channel values for `data_driven` and
   `markov`, metrics, data range, code version), not promoted: `mkt-ray models promote T VERSION`.

Prints progress on stderr (and Ray Data's progress bars), then ONE JSON line on stdout:
{"model_version", "journeys", "auc", "logloss", "channel_values": {channel: v},
 "credits": {channel: {"conversions", "revenue"}}} with `credits` the data_driven totals over the
training journeys' conversions. Exit code 2 with a message for bad input (empty, unknown tenant, bad
dates).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from mkt_ray.errors import InputError, MktRayError
from mkt_ray.registry import ModelRegistry
from mkt_ray.settings import Settings, TenantConfig, load_settings
from training._fit import credit, design, feature_table
from training._input import InputRange, locate_input, read_input
from training._journeys import Journeys, build_group, group_count, input_columns, merge_groups, split_events
from training._model import holdout_metrics, lgb_params, train_distributed


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.train_attribution", description=__doc__.split("\n")[0])
    parser.add_argument("--input", required=True, help="raw Parquet store: folder or s3:// URI")
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--since", help="first date read, YYYY-MM-DD (default: the first in the store)")
    parser.add_argument("--until", help="last date read, YYYY-MM-DD (default: the last in the store)")
    parser.add_argument("--output", required=True, help="model registry: folder or s3:// URI")
    parser.add_argument("--num-workers", type=int, default=1, help="Ray Train workers (1 CPU each)")
    parser.add_argument("--num-boost-round", type=int, default=100)
    parser.add_argument("--config", type=Path, help="settings YAML (tenant lookback and consent, raw store key)")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.num_workers < 1 or args.num_boost_round < 1:
            raise InputError("--num-workers and --num-boost-round must be at least 1")
        result = train(args)
    except MktRayError as exc:
        print(f"train_attribution: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, allow_nan=False))
    return 0


def train(args: argparse.Namespace, phases: dict[str, float] | None = None) -> dict[str, Any]:
    """The whole job (see the module docstring); the JSON line's content. `phases` (if given) receives the
    wall seconds of each step, for the benchmark's breakdown."""
    progress = _Progress({} if phases is None else phases)
    settings = load_settings(args.config)
    found = locate_input(args.input, args.tenant, args.since, args.until)
    progress("locate", f"tenant {found.tenant}: dates {found.since} .. {found.until} ({len(found.dates)} days)")
    _ensure_ray()
    journeys = _journeys(found, settings, progress)
    progress("journeys", f"{len(journeys)} journeys, {int(journeys.converted.sum())} converting")
    d = design(journeys)
    import ray.data

    train_ds = ray.data.from_arrow(feature_table(d, d.train))
    valid_ds = ray.data.from_arrow(feature_table(d, ~d.train))
    progress("features", f"training on {int(d.train.sum())} journeys, {int((~d.train).sum())} held out, "
                       f"{args.num_workers} worker(s), {args.num_boost_round} rounds")
    booster = train_distributed(train_ds, valid_ds, d.features, d.categorical, args.num_workers,
                                args.num_boost_round, args.seed)
    metrics = holdout_metrics(booster.predict(d.x[~d.train]), d.y[~d.train])
    progress("ray_train", f"holdout AUC {metrics['auc']:.4f}, log-loss {metrics['logloss']:.4f}")
    fitted = credit(journeys, d, booster.predict)
    progress("shapley_markov", "Shapley credit and Markov removal effects done")
    entry = {
        "channel_values": {"data_driven": fitted.data_driven, "markov": fitted.markov},
        "channels": list(d.channels), "features": d.features, "metrics": _finite(metrics),
        "data_range": {"input": found.uri, "tenant": found.tenant, "since": found.since, "until": found.until,
                       "dates": list(found.dates), "first_touch_ms": _min_or_none(journeys.touch_ts_ms),
                       "last_event_ms": _max_or_none(journeys.end_ms), "holdout_from_ms": d.cutoff_ms},
        "journeys": {"total": len(journeys), "converting": int(journeys.converted.sum()),
                     "train": int(d.train.sum()), "holdout": int((~d.train).sum())},
        "training": {"num_workers": args.num_workers, "num_boost_round": args.num_boost_round,
                     "params": lgb_params(num_threads=1, seed=args.seed)},
        "credits": fitted.credits, "code_version": code_version(),
    }
    version = ModelRegistry(args.output).publish(found.tenant, booster.model_to_string(), entry)
    progress("register", f"registered {found.tenant} {version} in {args.output}")
    return {"model_version": version, "journeys": len(journeys), "auc": _finite(metrics["auc"]),
            "logloss": _finite(metrics["logloss"]), "channel_values": fitted.data_driven, "credits": fitted.credits}


def _journeys(found: InputRange, settings: Settings, progress: _Progress) -> Journeys:
    """Ray Data reads the columns journeys need (partition filter); the identity pass splits the persons
    into groups (`group_count`), and Ray tasks build the groups' journeys in parallel (training/_journeys.py)."""
    import ray

    from mkt_ray.rawstore import raw_key

    config = settings.tenants.get(found.tenant) or TenantConfig()
    events = read_input(found, raw_key(settings.raw_store), columns=input_columns(config))
    tables = [t for t in ray.get(events.to_arrow_refs()) if t.num_rows]
    raw = pa.concat_tables(tables) if tables else None
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    groups = split_events(raw, config, group_count(raw.num_rows, cpus)) if raw is not None else []
    progress("read_identity", f"{raw.num_rows if raw is not None else 0} events read; identity pass: {len(groups)} "
                       f"group(s) of {min((g.events.num_rows for g in groups), default=0)} to "
                       f"{max((g.events.num_rows for g in groups), default=0)} events")
    build = ray.remote(num_cpus=1)(build_group)
    parts = ray.get([build.remote(group, config) for group in groups])
    journeys = merge_groups(parts)
    if not len(journeys):
        raise InputError(f"no journeys for tenant {found.tenant!r} in {found.uri} between {found.since} and "
                         f"{found.until}: the dates hold no user-level events with touchpoints or conversions")
    return journeys


def _ensure_ray() -> None:
    import ray

    if not ray.is_initialized():  # inside `ray job submit` this joins the job's cluster (RAY_ADDRESS)
        ray.init(log_to_driver=False, configure_logging=False)


def code_version() -> str:
    """The package version and, where the code is a git checkout, its commit."""
    version = metadata.version("mkt-ray")
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).resolve().parent, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version}+g{commit}" if commit else version


def _finite(value: Any) -> Any:
    """JSON has no NaN: a metric that cannot be measured (one class in the holdout) is null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _min_or_none(values: np.ndarray) -> int | None:
    return int(values.min()) if len(values) else None


def _max_or_none(values: np.ndarray) -> int | None:
    return int(values.max()) if len(values) else None


class _Progress:
    """Progress lines on stderr; each line ends a phase, whose wall seconds go to `phases`."""

    def __init__(self, phases: dict[str, float]) -> None:
        self.phases = phases
        self.started = self.last = time.perf_counter()

    def __call__(self, phase: str, message: str) -> None:
        now = time.perf_counter()
        self.phases[phase] = round(now - self.last, 2)
        self.last = now
        print(f"[train_attribution {now - self.started:6.1f}s] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())

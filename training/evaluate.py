"""Compare every attribution model's per-channel credit shares with a generated workload's ground truth.

    python -m training.evaluate --input RAW_URI --tenant T --truth GROUND_TRUTH.json
        [--since DATE] [--until DATE] [--registry URI [--version V]] [--num-boost-round R]

The journeys are the training job's (training/_journeys.py, the platform's stitching and lookback). The
five rule models and Markov credit the converting journeys with the library's own functions
(`rule_attribution`, `markov_attribution`), with the tenant's settings. data_driven is the registered
model (`--version`, else the promoted one) when `--registry` is given, else a model fitted here in one
process with the job's parameters; either way credited by the same exact Shapley code as the job.

A channel's share = its credited conversions / all conversions credited to channels; `(direct)`
conversions (no touchpoint in the lookback) are the baseline the ground truth leaves out too
(`channel_shares` in the generator's truth.json: each channel's true causal share of conversions).
Prints ONE JSON line on stdout ({"tenant", "journeys", "conversions", "data_driven_model", "truth",
"models": {model: {"shares", "max_error_pp", "mean_error_pp"}}}) and a readable table on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightgbm as lgb

from mkt_ray.attribution import DIRECT, Touches, markov_attribution, rule_attribution
from mkt_ray.errors import InputError, MktRayError
from mkt_ray.registry import ModelRegistry
from mkt_ray.settings import TenantConfig, load_settings
from training._fit import credit, design, markov_paths
from training._input import locate_input, read_table
from training._journeys import Journeys, build_journeys
from training._model import train_local

RULE_MODELS = ("first_touch", "last_touch", "linear", "position_based", "time_decay")
Credits = dict[str, dict[str, float]]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--input", required=True, help="raw Parquet store: folder or s3:// URI")
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--truth", required=True, type=Path, help="the generator's GROUND_TRUTH.json")
    parser.add_argument("--since")
    parser.add_argument("--until")
    parser.add_argument("--registry", help="take data_driven from this registry (default: fit one here)")
    parser.add_argument("--version", help="registry version (default: the tenant's promoted one)")
    parser.add_argument("--num-boost-round", type=int, default=100)
    parser.add_argument("--config", type=Path, help="settings YAML (tenant options, raw store key)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        report = evaluate(args)
    except MktRayError as exc:
        print(f"evaluate: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report))
    print(_table(report), file=sys.stderr)
    return 0


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    truth = _truth_shares(args.truth, args.tenant)
    settings = load_settings(args.config)
    from mkt_ray.rawstore import raw_key

    found = locate_input(args.input, args.tenant, args.since, args.until)
    config = settings.tenants.get(args.tenant) or TenantConfig()
    journeys = build_journeys(read_table(found, raw_key(settings.raw_store)), config)
    credits = {model: rule_attribution(_touches(journeys), model, config.half_life_days, config.position_first,
                                       config.position_last) for model in RULE_MODELS}
    credits["markov"] = markov_attribution(markov_paths(journeys)).credits
    credits["data_driven"], source = _data_driven(journeys, args)
    models = {}
    for model, by_channel in credits.items():
        shares = _shares(by_channel)
        errors = [abs(shares.get(ch, 0.0) - share) for ch, share in truth.items()]
        models[model] = {"shares": shares, "max_error_pp": 100 * max(errors), "mean_error_pp": 100 * sum(errors) / len(errors)}
    return {"tenant": args.tenant, "journeys": len(journeys), "conversions": float(journeys.conversions.sum()),
            "data_driven_model": source, "truth": truth, "models": models}


def _truth_shares(path: Path, tenant: str) -> dict[str, float]:
    try:
        truth = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the ground truth {path}: {exc}") from exc
    shares = truth.get("channel_shares", {}).get(tenant) if isinstance(truth, dict) else None
    if not shares:
        raise InputError(f"{path} has no channel_shares for tenant {tenant!r} (a `mkt-ray generate` truth file?)")
    return shares


def _touches(journeys: Journeys) -> Touches:
    """The converting journeys in the attribution library's layout (a direct one goes to `(direct)`)."""
    channels, ts, starts = journeys.channels.tolist(), journeys.touch_ts_ms.tolist(), journeys.starts.tolist()
    return Touches.from_journeys(
        ((list(zip(channels[starts[j]:starts[j + 1]], ts[starts[j]:starts[j + 1]], strict=True)),
          int(journeys.end_ms[j]), float(journeys.conversions[j]), float(journeys.revenue[j]))
         for j in range(len(journeys)) if journeys.converted[j]), timed=True)


def _data_driven(journeys: Journeys, args: argparse.Namespace) -> tuple[Credits, str]:
    if args.registry:
        registry = ModelRegistry(args.registry)
        version = args.version or registry.promoted(args.tenant)
        if version is None:
            raise InputError(f"tenant {args.tenant!r} has no promoted model in {args.registry}; give --version")
        entry = registry.entry(args.tenant, version)
        booster = lgb.Booster(model_str=registry.model_text(args.tenant, version))
        d = design(journeys, tuple(entry["channels"]))
        return credit(journeys, d, booster.predict).credits, f"registry {version}"
    d = design(journeys)
    booster = train_local(d.x[d.train], d.y[d.train], d.features, d.categorical, args.num_boost_round)
    return credit(journeys, d, booster.predict).credits, "fitted here"


def _shares(credits: Credits) -> dict[str, float]:
    total = sum(v["conversions"] for ch, v in credits.items() if ch != DIRECT)
    return {ch: (v["conversions"] / total if total else 0.0) for ch, v in sorted(credits.items()) if ch != DIRECT}


def _table(report: dict[str, Any]) -> str:
    channels = list(report["truth"])
    models = list(report["models"])
    width = max(len(c) for c in [*channels, "max error (pp)"]) + 2
    lines = [f"{report['tenant']}: {report['journeys']} journeys, {report['conversions']:.0f} conversions; "
             f"data_driven: {report['data_driven_model']}",
             "channel".ljust(width) + "truth".rjust(8) + "".join(m[:14].rjust(16) for m in models)]
    for ch in channels:
        lines.append(ch.ljust(width) + f"{report['truth'][ch]:8.3f}"
                     + "".join(f"{report['models'][m]['shares'].get(ch, 0.0):16.3f}" for m in models))
    for key, label in (("max_error_pp", "max error (pp)"), ("mean_error_pp", "mean error (pp)")):
        lines.append(label.ljust(width) + " " * 8 + "".join(f"{report['models'][m][key]:16.2f}" for m in models))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

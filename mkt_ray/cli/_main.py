"""Argument parsing and dispatch; each command lives in its own module and returns an exit code."""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from mkt_ray.errors import MktRayError


def _tenant_list(text: str) -> list[str]:
    from mkt_ray.contract._schema import TENANT_ID_PATTERN, is_valid_tenant_id  # msgspec only: a light import

    tenants = [t.strip() for t in text.split(",") if t.strip()]
    if not tenants:
        raise argparse.ArgumentTypeError("give at least one tenant id, e.g. acme,globex")
    invalid = [t for t in tenants if not is_valid_tenant_id(t)]
    if invalid:
        raise argparse.ArgumentTypeError(f"tenant ids {invalid} do not match {TENANT_ID_PATTERN} (lower-case letters, "
                                         "digits, - and _, up to 63)")
    return tenants


def _number(kind: type, least: float, inclusive: bool = True) -> Callable[[str], float]:
    """An argparse type: a number of `kind` at least `least` (above it, when not `inclusive`)."""
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not math.isfinite(value) or value < least or (value == least and not inclusive):
            raise argparse.ArgumentTypeError(f"{text} must be a finite number {'at least' if inclusive else 'above'} "
                                             f"{least:g}")
        return value

    return parse


_CONFIG_HELP = "YAML settings file (MKT_* environment variables override it)"
_VERBOSE_HELP = "log debug output to stderr"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mkt-ray", description="Real-time marketing measurement on Ray.")
    parser.add_argument("--config", type=Path, help=_CONFIG_HELP)
    parser.add_argument("-v", "--verbose", action="store_true", help=_VERBOSE_HELP)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("schema", help="print the JSON Schema of event contract v1")

    gen = commands.add_parser("generate", help="write a deterministic synthetic workload (JSONL + ground truth)")
    gen.add_argument("--events", type=int, required=True, help="number of messages to write")
    gen.add_argument("--tenants", type=_tenant_list, default=["acme", "globex", "initech"])
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--out", type=Path, required=True, help="output .jsonl file; ground truth goes to FILE.truth.json")
    gen.add_argument("--invalid-share", type=float, default=0.03, help="share of invalid messages (every reason code)")
    gen.add_argument("--duplicate-share", type=float, default=0.01, help="share of exact re-sends of valid messages")

    demo = commands.add_parser("demo", help="run the platform over a JSONL file and report one JSON line")
    demo.add_argument("--input", type=Path, required=True, help="JSONL file, one Kafka message per line")
    demo.add_argument("--tenants", type=_tenant_list, required=True, help="tenants to register, e.g. acme,globex")
    demo.add_argument("--json", action="store_true", help="print the report as one JSON line (default: indented)")
    demo.add_argument("--hold", type=_number(float, 0), default=0.0, metavar="SECONDS", help="keep the platform up after reporting")
    demo.add_argument("--raw-dir", type=Path, help="where the raw Parquet archive goes (default: inside the data dir)")
    demo.add_argument("--data-dir", type=Path, help="keep warehouse and logs here (default: a temporary folder)")
    demo.add_argument("--timeout", type=_number(float, 0, inclusive=False), default=600.0, help="give up if not all messages are applied by then")

    up = commands.add_parser("up", help="start the long-running platform (with synthetic traffic unless --no-demo)")
    up.add_argument("--no-demo", action="store_true", help="no synthetic traffic: wait for real producers")
    up.add_argument("--rate", type=_number(float, 0, inclusive=False), default=200.0,
                    help="synthetic events per second (--no-demo for none)")
    up.add_argument("--tenants", type=_tenant_list, help="tenants to register (default: the registry, else demo tenants)")
    up.add_argument("--max-events", type=_number(int, 1), default=2_000_000, help="stop synthetic traffic after this many events")
    up.add_argument("--status-every", type=_number(float, 0, inclusive=False), default=10.0, help="seconds between status lines")

    token = commands.add_parser("token", help="print a signed API token for a tenant and role")
    token.add_argument("tenant")
    token.add_argument("role", help="cmo, director, analyst, service or admin")
    token.add_argument("--ttl", type=_number(int, 1), help="seconds the token is valid (default: api.token_ttl_s)")

    attr = commands.add_parser("attribute", help="channel credits per model over a path file or events JSONL file")
    attr.add_argument("input", type=Path, help="path file (path;conversions;value;nulls) or events .jsonl")
    attr.add_argument("--models", metavar="LIST", help="comma list of first_touch, last_touch, linear, "
                      "position_based, time_decay, markov (default: all that apply to the input)")
    attr.add_argument("--order", type=int, default=1, help="Markov order k (states are the last k channels)")
    attr.add_argument("--format", choices=["json", "csv"], default="json")
    attr.add_argument("--lookback-days", type=float, default=30.0, help="events input: conversion lookback")
    attr.add_argument("--half-life-days", type=float, default=7.0, help="time_decay half-life")
    attr.add_argument("--tenant", help="events input: only this tenant's events")
    attr.add_argument("--as-of", metavar="TIME", help="events input: processing time the time rules judge "
                      "(ISO-8601 with zone; default: now)")
    from mkt_ray.cli._models import add_models_parser

    add_models_parser(commands)
    _global_options_anywhere(parser)
    return parser


def _global_options_anywhere(parser: argparse.ArgumentParser) -> None:
    """`--config` and `-v` after the command too (`mkt-ray demo ... --config prod.yaml`), on every sub-command:
    there they have no default, so one given before the command stands unless one after it replaces it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases share a parser
                sub.add_argument("--config", type=Path, default=argparse.SUPPRESS, help=_CONFIG_HELP)
                sub.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=_VERBOSE_HELP)
                _global_options_anywhere(sub)


def _raise_system_exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _raise_system_exit)  # stop cleanly, as on Ctrl-C
    try:
        if args.command == "schema":
            from mkt_ray.cli._schema import run_schema

            return run_schema()
        if args.command == "generate":
            from mkt_ray.cli._generate import run_generate

            return run_generate(args)
        if args.command == "demo":
            from mkt_ray.cli._demo import run_demo

            return run_demo(args)
        if args.command == "token":
            from mkt_ray.cli._token import run_token

            return run_token(args)
        if args.command == "attribute":
            from mkt_ray.cli._attribute import run_attribute

            return run_attribute(args)
        if args.command == "models":
            from mkt_ray.cli._models import run_models

            return run_models(args)
        from mkt_ray.cli._up import run_up

        return run_up(args)
    except MktRayError as exc:
        print(f"mkt-ray: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C where no command stops gracefully, or again while `up` stops: leave at once. The watchdog child
        # ends the broker and Ray's processes when this process is gone; Python's exit hooks are skipped, since
        # Ray's, racing the watchdog, sometimes ended the process with status 1, and a further Ctrl-C broke them
        print("mkt-ray: interrupted: leaving at once; what is still running ends with this process", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)

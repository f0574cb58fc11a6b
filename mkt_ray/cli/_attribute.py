"""`mkt-ray attribute`: channel credits of every model over a path file or an events JSONL file."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import UTC, datetime, timedelta

from mkt_ray.attribution import AttributionReport, AttributionSettings, attribute_file
from mkt_ray.errors import InputError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def run_attribute(args: argparse.Namespace) -> int:
    settings = AttributionSettings(
        order=args.order, lookback_days=args.lookback_days, half_life_days=args.half_life_days,
        tenant=args.tenant, now_ms=_as_of_ms(args.as_of),
    )
    report = attribute_file(args.input, _model_list(args.models), settings)
    if report.kind == "events":
        print(_events_summary(report), file=sys.stderr)
    if args.format == "csv":
        _write_csv(report)
    else:
        print(json.dumps(report.models, sort_keys=True))
    return 0


def _as_of_ms(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"--as-of must be an ISO-8601 time with a zone, e.g. 2026-03-01T00:00:00Z; got {text!r}") from None
    if moment.tzinfo is None:
        raise InputError(f"--as-of needs a zone (Z or +hh:mm): {text!r}")
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _events_summary(report: AttributionReport) -> str:
    invalid = sum(report.invalid.values())
    reasons = ", ".join(f"{code} {count:,}" for code, count in report.invalid.items())
    text = (f"mkt-ray: read {report.lines:,} events; skipped {invalid:,} invalid" + (f" ({reasons})" if reasons else "")
            + f", {report.skipped['duplicates']:,} duplicate, {report.skipped['no_consent']:,} without analytics consent")
    if "too_old" in report.invalid or "future_timestamp" in report.invalid:
        text += "; time rules judge --as-of (default: now), pass it to replay an older file"
    return text


def _model_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    models = [m.strip() for m in text.split(",") if m.strip()]
    if not models:
        raise InputError("--models needs at least one model, e.g. --models linear,markov")
    return models


def _write_csv(report: AttributionReport) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["model", "channel", "conversions", "revenue"])
    for model in sorted(report.models):
        for channel, credit in sorted(report.models[model].items()):
            writer.writerow([model, channel, repr(credit["conversions"]), repr(credit["revenue"])])

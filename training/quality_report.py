"""Daily data-quality report: per tenant, what arrived, what was refused and what looks wrong.

    python -m training.quality_report --date 2026-11-26 [--tenant acme] [--out DIR]

Sections, per tenant of the UTC day:
- `volume`: valid events and their KPI sums (tumbling 1-minute windows starting that day);
- `quarantine`: messages refused that day (by arrival), per reason code;
- `outliers`: messages refused as outliers (robust z-score), with their partition and offset;
- `ratio_violations`: closed windows whose totals break a ratio rule (clicks > impressions, ...);
- `late`: valid events applied after their 1-minute window had closed, and the worst delay.

The report goes to the `quality_reports` table (one row per date, tenant, section and item: a rerun
replaces its rows), and to `quality-<date>.json` and `.html` in `--out` (default
`<data_dir>/quality`). `mkt-ray up` runs it each day for the previous day (`QualitySchedule`).
"""

from __future__ import annotations

import argparse
import html
import json
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from mkt_ray.pipeline import KPI, LATE, QUARANTINE
from mkt_ray.pipeline._tables import KPI_AMOUNTS, KPI_COUNTS, SIGNALS
from mkt_ray.settings import Settings
from mkt_ray.warehouse import Warehouse, ensure_schema
from training._jobs import DAY_MS, day_ms, job_settings, job_warehouse, parse_day, run_job, say, yesterday

REPORTS = "quality_reports"
_EXAMPLES = 20
REPORT_SCHEMA = pa.schema([("report_date", pa.string()), ("tenant_id", pa.string()), ("section", pa.string()),
                           ("item", pa.string()), ("value", pa.float64()), ("generated_ms", pa.int64())])


def report_ddl(database: str) -> str:
    return f"""CREATE TABLE IF NOT EXISTS {database}.{REPORTS} (
        report_date String, tenant_id LowCardinality(String), section LowCardinality(String), item String,
        value Float64, generated_ms Int64
    ) ENGINE = ReplacingMergeTree(generated_ms) ORDER BY (report_date, tenant_id, section, item)"""


def quality_report(warehouse: Warehouse, database: str, day: date, tenant: str | None = None) -> dict[str, Any]:
    """{tenant: {section: ...}} for one UTC day (every tenant seen that day, or just `tenant`)."""
    params = {"a": day_ms(day), "b": day_ms(day) + DAY_MS, "t": tenant or ""}
    only = "AND (tenant_id = {t:String} OR {t:String} = '')"
    report: dict[str, dict[str, Any]] = {}

    def section(name: str) -> Callable[[str], dict]:
        return lambda t: report.setdefault(t, _empty()).setdefault(name, {})

    metrics = (*KPI_COUNTS, *KPI_AMOUNTS)
    for t, *sums in warehouse.query_rows(
            f"SELECT tenant_id, {', '.join(f'sum({m})' for m in metrics)} FROM {database}.{KPI} "
            f"WHERE window = 'tumbling_1m' AND window_start_ms >= {{a:Int64}} AND window_start_ms < {{b:Int64}} {only} "
            "GROUP BY tenant_id ORDER BY tenant_id", params):
        section("volume")(t).update({m: (int(v) if m in KPI_COUNTS else float(v)) for m, v in zip(metrics, sums, strict=True)})
    for t, reason, n in warehouse.query_rows(
            f"SELECT tenant_id, reason, count() FROM {database}.{QUARANTINE} FINAL WHERE quarantined_ms >= {{a:Int64}} "
            f"AND quarantined_ms < {{b:Int64}} {only} GROUP BY tenant_id, reason ORDER BY tenant_id, reason", params):
        section("quarantine")(t or "(unreadable)")[reason] = int(n)
    for t, partition, offset in warehouse.query_rows(
            f"SELECT tenant_id, partition, offset FROM {database}.{QUARANTINE} FINAL WHERE reason = 'outlier' "
            f"AND quarantined_ms >= {{a:Int64}} AND quarantined_ms < {{b:Int64}} {only} "
            "ORDER BY tenant_id, partition, offset", params):
        outliers = section("outliers")(t)
        outliers["count"] = outliers.get("count", 0) + 1
        if len(outliers.setdefault("examples", [])) < _EXAMPLES:
            outliers["examples"].append({"partition": int(partition), "offset": int(offset)})
    for t, rule, window, campaign, source, start in warehouse.query_rows(
            f"SELECT tenant_id, rule, window, campaign_id, source, window_start_ms FROM {database}.{SIGNALS} FINAL "
            f"WHERE kind = 'quality' AND window_start_ms >= {{a:Int64}} AND window_start_ms < {{b:Int64}} {only} "
            "ORDER BY tenant_id, rule, window, window_start_ms, campaign_id, source", params):
        violations = section("ratio_violations")(t)
        violations[rule] = violations.get(rule, 0) + 1
        examples = violations.setdefault("examples", [])
        if len(examples) < _EXAMPLES:
            examples.append({"rule": rule, "window": window, "campaign_id": campaign, "source": source,
                             "window_start_ms": int(start)})
    for t, n, worst in warehouse.query_rows(
            f"SELECT tenant_id, sum(late_events), max(max_delay_ms) FROM {database}.{LATE} FINAL "
            f"WHERE window_start_ms >= {{a:Int64}} AND window_start_ms < {{b:Int64}} {only} "
            "GROUP BY tenant_id ORDER BY tenant_id", params):
        section("late")(t).update({"events": int(n), "max_delay_ms": int(worst)})
    return dict(sorted(report.items()))


def _empty() -> dict[str, Any]:
    return {"volume": {}, "quarantine": {}, "outliers": {}, "ratio_violations": {}, "late": {}}


def report_rows(report: dict[str, Any], day: date, generated_ms: int) -> pa.Table:
    """The report flattened to (tenant, section, item, value) rows; examples stay in the JSON file."""
    rows = [{"report_date": day.isoformat(), "tenant_id": t, "section": s, "item": item, "value": float(value),
             "generated_ms": generated_ms}
            for t, sections in report.items() for s, items in sections.items()
            for item, value in items.items() if item != "examples"]
    return pa.Table.from_pylist(rows, schema=REPORT_SCHEMA)


def render_html(report: dict[str, Any], day: date) -> str:
    """A self-contained HTML page: one table per tenant and section."""
    parts = [f"<!doctype html><meta charset='utf-8'><title>mkt-ray data quality {day}</title>",
             "<style>body{font-family:sans-serif}table{border-collapse:collapse;margin:4px 0 12px}"
             "td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}</style>",
             f"<h1>Data quality report {day} (UTC)</h1>"]
    if not report:
        parts.append("<p>No data for this day.</p>")
    for tenant, sections in report.items():
        parts.append(f"<h2>{html.escape(tenant)}</h2>")
        for name, items in sections.items():
            parts.append(f"<h3>{html.escape(name)}</h3>")
            if not items:
                parts.append("<p>none</p>")
                continue
            parts.append("<table>" + "".join(
                f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(json.dumps(v))}</td></tr>" for k, v in items.items())
                + "</table>")
    return "\n".join(parts)


def write_report(warehouse: Warehouse, database: str, day: date, out_dir: Path, tenant: str | None = None,
                 now_ms: int | None = None) -> dict[str, Any]:
    """Build the report, store its rows (replacing a previous run's) and write the JSON and HTML files."""
    ensure_schema(warehouse, [report_ddl(database)])
    report = quality_report(warehouse, database, day, tenant)
    generated = now_ms if now_ms is not None else int(time.time() * 1000)
    rows = report_rows(report, day, generated)
    if rows.num_rows:
        warehouse.insert_arrow(REPORTS, rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"quality-{day.isoformat()}" + (f"-{tenant}" if tenant else "")
    (out_dir / f"{stem}.json").write_text(json.dumps({"date": day.isoformat(), "tenants": report}, indent=2))
    (out_dir / f"{stem}.html").write_text(render_html(report, day))
    return report


class QualitySchedule:
    """Runs the report once a day for the previous day, after `hour_utc` (a timer for `mkt-ray up`)."""

    def __init__(self, hour_utc: int, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.hour_utc, self.clock = hour_utc, clock
        self.last: date | None = None

    def due(self) -> date | None:
        """The day to report on now, or None (already done today, or before the hour)."""
        now = self.clock()
        day = yesterday(now)
        if now.hour < self.hour_utc or self.last == day:
            return None
        return day

    def run_if_due(self, warehouse: Warehouse, settings: Settings) -> tuple[date, dict[str, Any]] | None:
        """The report of the due day (see `write_report`) and that day, or None when none is due."""
        day = self.due()
        if day is None:
            return None
        report = write_report(warehouse, settings.warehouse.database, day, settings.data_dir / "quality")
        self.last = day
        return day, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.quality_report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--date", required=True, help="UTC day, YYYY-MM-DD")
    parser.add_argument("--tenant", help="one tenant (default: every tenant seen that day)")
    parser.add_argument("--out", type=Path, help="folder for the JSON and HTML files (default <data_dir>/quality)")
    parser.add_argument("--config", type=Path, help="settings YAML (else MKT_ environment and defaults)")
    args = parser.parse_args(argv)
    return run_job(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    day = parse_day(args.date, "--date")
    settings = job_settings(args.config, [args.tenant] if args.tenant else [])
    warehouse = job_warehouse(settings)
    try:
        out = args.out or settings.data_dir / "quality"
        report = write_report(warehouse, settings.warehouse.database, day, out, args.tenant)
    finally:
        warehouse.close()
    say(f"quality report {day}: {len(report)} tenant(s); {out}/quality-{day}.json and .html")
    print(json.dumps({"date": day.isoformat(), "tenants": report}, sort_keys=True), flush=True)
    return 0

if __name__ == "__main__":
    raise SystemExit(main())

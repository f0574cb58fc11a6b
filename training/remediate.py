"""Remediation: re-validate quarantined messages under the current rules and re-inject the valid ones.

    python -m training.remediate --tenant acme --reason future_timestamp

After a rule change (a contract limit such as `contract.max_future_s`, or a tenant added to the
registry), messages quarantined under the old rules may now be valid. Each quarantined message of the
tenant and reason that has not been remediated yet is classified again with the current settings
(the stateless contract rules, `classify`); the ones it accepts are produced again to
`marketing-events` (keyed by tenant, as any producer would) and then marked in the `remediations`
table, so a second run re-injects nothing. The stateful rules (outliers, duplicates) are judged again
by the pipeline when it consumes a re-injected message.

Exactly once: marks are written after the broker acknowledged every re-injected message. A run that
dies between the two re-injects the same bytes on its next run, and the pipeline drops them as
duplicates (same tenant and event_id within `contract.dedup_window_hours`).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa

from mkt_ray.contract import Limits, Reason, classify
from mkt_ray.errors import InputError
from mkt_ray.kafka import produce_lines
from mkt_ray.pipeline import QUARANTINE, tenant_key
from mkt_ray.settings import Settings
from mkt_ray.warehouse import Warehouse, ensure_schema
from training._jobs import job_settings, job_warehouse, print_json, run_job, say

REMEDIATIONS = "remediations"
MARK_SCHEMA = pa.schema([("partition", pa.int32()), ("offset", pa.int64()), ("tenant_id", pa.string()),
                         ("reason", pa.string()), ("remediated_ms", pa.int64())])


def remediation_ddl(database: str) -> str:
    return f"""CREATE TABLE IF NOT EXISTS {database}.{REMEDIATIONS} (
        partition Int32, offset Int64, tenant_id LowCardinality(String), reason LowCardinality(String),
        remediated_ms Int64
    ) ENGINE = ReplacingMergeTree ORDER BY (partition, offset)"""


def remediate(settings: Settings, warehouse: Warehouse, kafka_conf: dict[str, Any], tenant: str, reason: str,
              now_ms: int | None = None) -> dict[str, Any]:
    """Re-inject the now-valid quarantined messages of `tenant` and `reason`; a summary of what happened."""
    if reason not in {r.code for r in Reason}:
        raise InputError(f"--reason {reason!r} is not a reason code; one of {sorted(r.code for r in Reason)}")
    db = settings.warehouse.database
    ensure_schema(warehouse, [remediation_ddl(db)])
    pending = warehouse.query_arrow(
        f"SELECT partition, offset, raw FROM {db}.{QUARANTINE} FINAL WHERE tenant_id = {{t:String}} "
        f"AND reason = {{r:String}} AND (partition, offset) NOT IN (SELECT partition, offset FROM {db}.{REMEDIATIONS}) "
        "ORDER BY partition, offset", {"t": tenant, "r": reason})
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    limits = Limits.from_settings(settings.contract)
    valid, still = [], Counter()
    for partition, offset, raw in zip(pending["partition"].to_pylist(), pending["offset"].to_pylist(),
                                      pending["raw"].to_pylist(), strict=True):
        data = raw if isinstance(raw, bytes) else raw.encode()
        verdict = classify(data, settings.tenants, now, limits)
        if verdict is None:
            valid.append((partition, offset, data))
        else:
            still[verdict.code] += 1
    if valid:
        produce_lines(kafka_conf, settings.kafka.topic_events, [data for _, _, data in valid], tenant_key)
        marks = pa.Table.from_pylist([{"partition": p, "offset": o, "tenant_id": tenant, "reason": reason,
                                       "remediated_ms": now} for p, o, _ in valid], schema=MARK_SCHEMA)
        warehouse.insert_arrow(REMEDIATIONS, marks)
    return {"tenant": tenant, "reason": reason, "examined": pending.num_rows, "reinjected": len(valid),
            "still_invalid": dict(still)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.remediate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--reason", required=True, help="quarantine reason code, e.g. future_timestamp")
    parser.add_argument("--config", type=Path, help="settings YAML (else MKT_ environment and defaults)")
    args = parser.parse_args(argv)
    return run_job(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    settings = job_settings(args.config, [])
    if not settings.kafka.bootstrap_servers:
        raise InputError("kafka.bootstrap_servers is not set (MKT_KAFKA__BOOTSTRAP_SERVERS): where to re-inject?")
    warehouse = job_warehouse(settings)
    try:
        summary = remediate(settings, warehouse, settings.kafka.client_config(), args.tenant, args.reason)
    finally:
        warehouse.close()
    say(f"re-injected {summary['reinjected']} of {summary['examined']} quarantined {args.reason} message(s) of {args.tenant}")
    print_json(summary)
    return 0

if __name__ == "__main__":
    raise SystemExit(main())

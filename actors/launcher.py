"""The pipeline launcher: brings the embedded platform up and down, and reads its state.

`Platform` starts what the settings do not point elsewhere (the broker, a local Ray), the store actor
that owns the warehouse, and P ingest actors. Used as a context manager it stops everything it started,
whatever ends the block: an exception, Ctrl-C or SIGTERM (the CLI turns SIGTERM into SystemExit).
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray

from actors.deletion import start_deletion_actor
from actors.ingest import IngestActor
from actors.preflight import check_port_free, check_ray_reachable
from actors.shard import shard_names, start_shards
from actors.store import start_store_actor
from actors.supervise import RayNodeWatch, short_error
from mkt_ray.embedded import (
    DataDirLock,
    EmbeddedBroker,
    Reaper,
    earlier_runs,
    free_port,
    set_aside_earlier_run,
)
from mkt_ray.errors import BrokerError, MktRayError
from mkt_ray.kafka import create_topics, topic_offset_bounds
from mkt_ray.observability import merged_percentiles
from mkt_ray.pipeline import KPI, QUARANTINE, BatchCounts, ledger_sql, nest_summary, pipeline_ddl, summary_sql
from mkt_ray.settings import Settings


def _say(message: str) -> None:
    print(f"mkt-ray: {message}", file=sys.stderr, flush=True)


def _direct_ingress_env(port: int) -> dict[str, str]:
    """Ray Serve settings (environment variables of its processes) for one ingress replica serving HTTP
    on `port` itself: the port range is that one port (its upper end is exclusive); a stopping replica drains for 1 s rather than 30
    (no load balancer in front needs time to notice), and its port is free again at once rather than
    quarantined for one (there is no HAProxy whose stale workers could still route to it)."""
    return {"RAY_SERVE_ENABLE_DIRECT_INGRESS": "1", "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(port),
            "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(port + 1), "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "1",
            "RAY_SERVE_PORT_QUARANTINE_S": "0"}

class Platform:
    """The running platform: broker, Ray, store actor, ingest actors."""

    def __init__(self, settings: Settings, dashboard: bool = False, say: Callable[[str], None] = _say) -> None:
        self.settings = settings
        self.dashboard = dashboard
        self.say = say
        self.broker: EmbeddedBroker | None = None
        self.bootstrap: str | None = settings.kafka.bootstrap_servers
        self.store: Any = None
        self.ingest: list[Any] = []
        self.deletion: Any = None  # carries out right-to-be-forgotten requests (actors/deletion.py)
        self.shards: list[Any] = []
        self.dashboard_url: str | None = None
        self.api_url: str | None = None
        self._owns_ray = False
        self._direct_ingress = False
        self._saved_env: dict[str, str | None] = {}  # variables `_start_ray` changed, restored by `stop`
        self._reaper = Reaper()
        self._ray_watch: RayNodeWatch | None = None  # the local Ray node this platform started
        self._lock = DataDirLock(settings.data_dir)  # one platform at a time per data folder
        self._suffix = uuid.uuid4().hex[:8]

    def __enter__(self) -> Platform:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def store_name(self) -> str:
        return f"mkt-store-{self._suffix}"

    @property
    def kafka_conf(self) -> dict[str, Any]:
        return self.settings.kafka.client_config(self.bootstrap)

    def start(self) -> Platform:
        self._lock.acquire()  # before anything is started or moved
        self._reaper.start()  # ends what we start here if this process is killed outright
        if self.bootstrap is None:
            self._set_aside_earlier_run()
            self.broker = EmbeddedBroker(log_path=self.settings.data_dir / "broker.log").start()
            self.bootstrap = self.broker.bootstrap
            self.say(f"broker (embedded Tansu) on {self.bootstrap}")
        else:  # an unreachable cluster answers nothing for the whole wait: say what is being waited for
            self.say(f"Kafka at {self.bootstrap}: connecting, creating missing topics (gives up after 30 s) ...")
        create_topics(self.kafka_conf, self.settings.kafka)
        self._start_ray()
        self.store = start_store_actor(self.settings, name=self.store_name)
        for statement in pipeline_ddl(self.settings.warehouse.database):
            ray.get(self.store.execute.remote(statement))
        wh = self.settings.warehouse
        if self.broker is not None and wh.backend == "clickhouse" and self.ledger():
            raise MktRayError(
                f"the ClickHouse database {wh.database!r} holds the offsets an earlier run applied, and the embedded "
                "broker starts with empty topics: its offsets would be taken for applied ones. Use another "
                "warehouse.database (MKT_WAREHOUSE__DATABASE) with the embedded broker, or the Kafka it ran on")
        self.say(f"warehouse ({wh.backend}) at {wh.url if wh.backend == 'clickhouse' else self.settings.chdb_path}")
        # every actor is requested at once, members first, and then awaited: Ray starts workers in request
        # order, so the members join their consumer group (a ~3 s wait on the broker) while the shards start
        shards = shard_names(self.settings.pipeline.shards, self._suffix)
        self.ingest = [
            IngestActor.options(name=f"mkt-ingest-{i}-{self._suffix}").remote(
                self.settings, self.bootstrap, self.store_name, shards, i)
            for i in range(self.settings.pipeline.ingest_actors)
        ]
        self.shards = start_shards(self.settings, self.bootstrap, self.store_name, self._suffix)
        self.deletion = start_deletion_actor(self.settings, self.store_name,
                                             [f"mkt-ingest-{i}-{self._suffix}" for i in range(len(self.ingest))])
        # all constructed before start returns: a kill during a worker's start-up can leave that worker behind
        self._wait_placed([shard.stats.remote() for shard in self.shards], "tenant shards")
        self._wait_placed([member.__ray_ready__.remote() for member in self.ingest], "ingest members")
        self._wait_placed([self.deletion.__ray_ready__.remote()], "the deletion actor")
        self.say(f"{len(self.ingest)} ingest actor(s) in consumer group {self.settings.kafka.consumer_group}, "
                 f"{len(self.shards)} tenant shard(s)")
        return self

    def _set_aside_earlier_run(self) -> None:
        """The embedded broker's topics start empty: move the offset-bound data an earlier run left in the
        local warehouse and raw store aside (mkt_ray/embedded/_earlier_run.py)."""
        stores = {"warehouse": self.settings.chdb_path} if self.settings.warehouse.backend == "chdb" else {}
        if "://" not in self.settings.raw_uri:
            stores["raw"] = Path(self.settings.raw_uri)
        moved = set_aside_earlier_run(self.settings.data_dir, stores)
        if moved is not None:
            self.say(f"the previous run's warehouse and raw Parquet moved to {moved}: they record offsets of its "
                     "topics, and the embedded broker starts with empty ones (tombstones and models stay)")
            runs, size = earlier_runs(self.settings.data_dir)  # kept until the user deletes them: say how much
            self.say(f"{moved.parent} holds {runs} earlier run(s), {size / 2**20:,.1f} MiB; delete those you no "
                     "longer need")

    def start_serve(self, host: str, port: int) -> str:
        """Deploy the query API (serve_apps/query.py) on Ray Serve at host:port, reading through this
        platform's store actor; returns its URL. `stop` shuts Serve down."""
        from ray import serve

        from serve_apps.query import build_app

        check_port_free(host, port)
        direct = self._direct_ingress and port == self.settings.serve_port
        # with direct ingress the replica listens on `port` and Serve's own proxy takes a spare one
        serve.start(http_options={"host": host, "port": free_port() if direct else port})
        store = (self.store_name, ray.get_runtime_context().namespace)
        serve.run(build_app(self.settings, store), name="mkt-api", route_prefix="/")
        self.api_url = f"http://{host}:{port}"
        self.say(f"query API and dashboard on {self.api_url} (docs: {self.api_url}/docs)")
        return self.api_url

    def _wait_placed(self, refs: list, what: str, timeout_s: float = 120.0) -> None:
        """Wait until actors are constructed; a cluster without room for them gets a clear error."""
        try:
            ray.get(refs, timeout=timeout_s)
        except ray.exceptions.GetTimeoutError:
            resources = ray.available_resources()
            raise MktRayError(
                f"{what} were not placed within {timeout_s:.0f} s; Ray has {resources.get('CPU', 0):.2f} CPU free. "
                "Lower pipeline.ingest_actors / pipeline.shards or give Ray more CPUs (ray_num_cpus)"
            ) from None

    def _start_ray(self) -> None:
        if ray.is_initialized():
            return
        api = self.settings.api
        if api.direct_ingress and not self.settings.ray_address and api.replicas == 1 and self.settings.serve_port:
            # read by Serve's controller and replica when they start, so set before Ray starts its processes
            env = _direct_ingress_env(self.settings.serve_port)
            self._saved_env = {name: os.environ.get(name) for name in env}
            os.environ.update(env)
            self._direct_ingress = True
        address = self.settings.ray_address
        if address:
            check_ray_reachable(address)
            self.say(f"Ray cluster at {address}: connecting ...")
        try:
            context = ray.init(
                address=address, num_cpus=None if address else self.settings.ray_num_cpus,
                include_dashboard=self.dashboard, dashboard_host="127.0.0.1", log_to_driver=False, configure_logging=False,
                _metrics_export_port=None if address else self.settings.observability.metrics_export_port,
            )
        except ConnectionError as exc:  # something answers there, but not a Ray head's GCS or a Ray Client server
            raise MktRayError(f"cannot join the Ray cluster at {address} ({exc}): is it a head node's GCS port "
                              "(6379 by default) or a Ray Client address (ray://host:10001)?") from None
        self._owns_ray = True
        self._ray_watch = None if address else RayNodeWatch.of_local_ray()
        self.dashboard_url = f"http://{context.dashboard_url}" if context.dashboard_url else None
        self.say(f"Ray {ray.__version__} ({'cluster ' + self.settings.ray_address if self.settings.ray_address else 'local'})")

    def stop(self) -> None:
        """Stop everything this platform started (idempotent; each step runs even if one fails)."""
        # every member at once, within 30 s: one by one, each leaving the group would hand its partitions
        # to the others, which would restore them only to stop in turn
        stopping: list[ray.ObjectRef] = []
        if self._ray_watch is not None and self._ray_watch.ended():  # no actor left to ask: only shut Ray down
            self.ingest, self.deletion, self.shards, self.store = [], None, [], None
        for actor in self.ingest:
            _quietly(lambda a=actor: stopping.append(a.stop.remote()))
        deadline = time.monotonic() + 30
        for ref in stopping:
            _quietly(lambda r=ref: ray.get(r, timeout=max(0.0, deadline - time.monotonic())))
        for actor in self.ingest:
            _quietly(lambda a=actor: ray.kill(a))
        self.ingest = []
        if self.deletion is not None:
            _quietly(lambda: ray.kill(self.deletion))
            self.deletion = None
        for shard in self.shards:
            _quietly(lambda a=shard: ray.kill(a))
        self.shards = []
        if self.api_url is not None:
            # a local Ray this platform started goes down whole below, Serve with it; `serve.shutdown` there
            # only adds a raylet error line (its controller kills itself under a retried shutdown call)
            if not (self._owns_ray and not self.settings.ray_address):
                from ray import serve

                _quietly(serve.shutdown)
            self.api_url = None
        if self.store is not None:
            _quietly(lambda: ray.get(self.store.close.remote(), timeout=30))
            _quietly(lambda: ray.kill(self.store))
            self.store = None
        if self._owns_ray:
            _quietly(ray.shutdown)
            self._owns_ray = False
        for name, value in self._saved_env.items():  # a later Ray in this process starts as configured
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env = {}
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        self._ray_watch = None
        self._reaper.stop()
        self._lock.release()

    def check_health(self) -> None:
        """MktRayError, saying what ended and what is kept, if the embedded broker or the local Ray node ended."""
        ended = self.broker.exited() if self.broker is not None else None
        if ended is not None:
            raise MktRayError(
                f"the embedded broker (pid {self.broker.pid}) {ended}\nIts topics lived in its memory: messages "
                "not yet applied are gone; everything applied is in the warehouse and raw Parquet. Start again to "
                f"go on (this run's warehouse and raw Parquet then move to {self.settings.data_dir / 'previous'})")
        ended = self._ray_watch.ended() if self._ray_watch is not None else None
        if ended is not None:
            raise MktRayError(f"{ended}.\nEverything applied is in the warehouse and raw Parquet; start again to go on")

    def stats(self, member_errors: bool = True) -> dict[str, Any]:
        """Counters summed over ingest actors; raises if the embedded broker or Ray's node ended, or a member's
        loop died (unless `member_errors` is False: a supervisor restarts those, actors/supervise.py)."""
        self.check_health()
        parts = ray.get([a.stats.remote() for a in self.ingest])
        errors = [f"member {p['member']}: {p['error']}" for p in parts if p["error"]]
        if errors and member_errors:
            raise MktRayError("ingest failed: " + "; ".join(errors))
        total = BatchCounts()
        for p in parts:
            total.add(BatchCounts(p["read"], p["valid"], p["quarantined"], p["duplicate"], p["reasons"]))
        firsts = [p["first_consumed_ms"] for p in parts if p["first_consumed_ms"]]
        lasts = [p["last_applied_ms"] for p in parts if p["last_applied_ms"]]
        latency = merged_percentiles([(p["latency_ms"], p["latency_seen"]) for p in parts], (50, 99), "kpi_p")
        phases: dict[str, float] = {}
        for p in parts:
            for phase, seconds in p["phase_s"].items():
                phases[phase] = phases.get(phase, 0.0) + seconds
        return {**total.as_dict(), "member_pids": [p["pid"] for p in parts], "first_consumed_ms": min(firsts, default=None),
                "last_applied_ms": max(lasts, default=None), "latency_ms": latency,
                "phase_s": {k: round(v, 3) for k, v in sorted(phases.items(), key=lambda kv: -kv[1])}}

    def wait_until_assigned(self, timeout_s: float = 60.0) -> None:
        """Block until the consumer group has assigned every partition of the events topic."""
        deadline = time.monotonic() + timeout_s
        expected = set(range(self.settings.kafka.partitions))
        while True:
            parts = ray.get([a.stats.remote() for a in self.ingest])
            assigned = {p for part in parts for p in part["assigned"]}
            if assigned >= expected:
                return
            errors = [f"member {p['member']}: {p['error']}" for p in parts if p["error"]]
            if errors:
                raise MktRayError("ingest failed while joining the consumer group: " + "; ".join(errors))
            if time.monotonic() > deadline:
                raise MktRayError(f"consumer group not ready after {timeout_s:.0f} s (assigned {sorted(assigned)})")
            time.sleep(0.1)

    def wait_until_read(self, expected: int, timeout_s: float, progress_every_s: float = 5.0) -> dict[str, Any]:
        """Block until the ingest actors have applied `expected` messages; returns their stats."""
        deadline, next_report = time.monotonic() + timeout_s, time.monotonic() + progress_every_s
        while True:
            stats = self.stats()
            if stats["read"] >= expected:
                return stats
            if time.monotonic() > deadline:
                raise MktRayError(f"only {stats['read']} of {expected} messages applied after {timeout_s:.0f} s")
            if time.monotonic() > next_report:
                self.say(f"applied {stats['read']:,} of {expected:,} messages")
                next_report += progress_every_s
            time.sleep(0.1)

    def backlog(self, timeout_s: float = 2.0) -> int | None:
        """Messages on the events topic not applied yet: past the ledger, or past the first one the topic still
        holds; None where the broker does not answer within `timeout_s`."""
        try:
            bounds = topic_offset_bounds(self.kafka_conf, self.settings.kafka.topic_events, timeout_s)
        except BrokerError:
            return None
        ledger = self.ledger()
        return sum(max(0, high - max(low, ledger.get(p, -1) + 1)) for p, (low, high) in bounds.items())

    def ledger(self) -> dict[int, int]:
        """The highest applied offset of each partition, from the warehouse (survives any restart)."""
        return {int(p): int(o) for p, o in self.query(ledger_sql(self.settings.warehouse.database))}

    def wait_until_applied(self, end_offsets: dict[int, int], timeout_s: float) -> None:
        """Block until the warehouse ledger reaches `end_offsets` (next offset to be written, per partition).

        Raises at once if an ingest member's loop died (checked every 2 s).
        """
        deadline = time.monotonic() + timeout_s
        targets = {p: end - 1 for p, end in end_offsets.items() if end > 0}
        next_check = time.monotonic() + 2.0
        while True:
            if time.monotonic() > next_check:
                try:
                    self.stats()  # raises MktRayError naming the member and its error
                except ray.exceptions.ActorUnavailableError:
                    pass  # a member is restarting after a kill: asked again at the next check
                next_check += 2.0
            ledger = self.ledger()
            if all(ledger.get(p, -1) >= last for p, last in targets.items()):
                return
            if time.monotonic() > deadline:
                raise MktRayError(f"ledger {ledger} has not reached {targets} after {timeout_s:.0f} s")
            time.sleep(0.2)

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple]:
        return ray.get(self.store.query_rows.remote(sql, params))

    def kpi_totals(self) -> dict[str, dict[str, float]]:
        """Per-tenant sums of the KPI rows in the warehouse."""
        db = self.settings.warehouse.database
        rows = self.query(
            f"SELECT tenant_id, sum(events), sum(impressions), sum(clicks), sum(conversions), sum(cost), sum(revenue) "
            f"FROM {db}.{KPI} WHERE window = 'tumbling_1m' GROUP BY tenant_id ORDER BY tenant_id"
        )
        names = ("events", "impressions", "clicks", "conversions", "cost", "revenue")
        return {row[0]: {n: (float(v) if n in ("cost", "revenue") else int(v)) for n, v in zip(names, row[1:], strict=True)} for row in rows}

    def attribution_summary(self) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
        """{tenant: {model: {channel: {conversions, revenue, touchpoints, credited_conversions,
        fallback_conversions}}}} from the `attribution_summary` view (each credit row once)."""
        return nest_summary(self.query(summary_sql(self.settings.warehouse.database)))

    def attribution_totals(self) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
        """{tenant: {model: {channel: {"conversions", "revenue"}}}} from the summary."""
        return {tenant: {model: {channel: {"conversions": v["conversions"], "revenue": v["revenue"]}
                                 for channel, v in channels.items()} for model, channels in models.items()}
                for tenant, models in self.attribution_summary().items()}

    def quarantine_counts(self) -> dict[str, int]:
        """Rejected messages per reason code, from the quarantine table (each message once)."""
        db = self.settings.warehouse.database
        rows = self.query(f"SELECT reason, count() FROM {db}.{QUARANTINE} FINAL GROUP BY reason ORDER BY reason")
        return {reason: int(n) for reason, n in rows}


def _quietly(step: Callable[[], object]) -> None:
    try:
        step()
    except Exception as exc:  # shutting down: report and go on with the next step
        _say(f"while stopping: {short_error(exc)}")

"""IngestActor: one member of the consumer group on `marketing-events`.

Consume a batch, decode it partition by partition with the contract code, then, before committing:
write valid events to the raw archive, rejects to the quarantine topic and table, and the batch's KPI
window rows to the warehouse in one insert. That insert is the commit point: its rows carry the
partition and offset range they cover (the ledger), and one insert is applied all or nothing.

Two stages, one batch apart: the member thread consumes and decodes batch N+1 and builds its Arrow
tables for the raw archive and the shards (CPU in this process) while a writer thread applies batch N
(mostly waiting on the shards, the store and the Parquet writer), so both cores stay busy. Decoding
changes only in-memory state; nothing of batch N+1 is written before batch N is committed, and a
decoder checkpoint taken ahead of the ledger is never loaded (restore takes the newest one at or
before it).

Taking over a partition (house-style rebalance roles): assign = restore. The member reads the ledger
(L = highest applied offset; another topic, one created again, or a partition ending at or before L is refused),
removes raw files an unfinished batch left after L and checkpoints newer than L (states of batches decoded
but never written), loads the newest checkpoint at or before L, and consumes from just after it: offsets
up to L are decoded again only to rebuild the decoder's state, later ones are applied. Revoke: the batch
in the writer is committed first. Lost: the batch in the writer finishes (its Kafka commit may fail, which
is logged: a new owner resumes from the ledger), then the state is dropped.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from functools import partial
from operator import itemgetter
from typing import Any

# referenced through the module: the classes' __module__ is `cimpl`, which Ray's pickling of actor classes
# cannot import by name on the worker
import confluent_kafka as ck
import numpy as np
import pyarrow as pa
import ray

from actors.store import check_same_topic
from mkt_ray.attribution import warm_up
from mkt_ray.contract import BatchDecoder, EventColumns, Limits, gc_paused
from mkt_ray.kafka import (
    consumer_config,
    data_messages,
    flush_queued,
    producer_config,
    queue_message,
    queue_messages,
)
from mkt_ray.observability import BatchObserver, Reservoir, alert_messages, span
from mkt_ray.pipeline import (
    ATTRIBUTION,
    KPI,
    QUARANTINE,
    BatchCounts,
    BatchOutput,
    PartitionState,
    attribute_partition,
    drop_checkpoints_after,
    enrich,
    ledger_sql,
    load_checkpoint,
    process_batch,
    save_checkpoint,
    tenant_partitions,
    use_system_arrow_pool,
)
from mkt_ray.pipeline._tables import ALERTS, LATE
from mkt_ray.rawstore import (
    Tombstones,
    archive_partitions,
    forgotten_raw,
    identity_hash,
    load_tombstones,
    raw_key,
    remove_after,
    slice_name,
)
from mkt_ray.registry import PromotedModels
from mkt_ray.settings import Settings

log = logging.getLogger("mkt_ray.ingest")
_LATENCY_SAMPLES = 200_000


@ray.remote(num_cpus=0.2, max_concurrency=4, max_restarts=-1)
class IngestActor:
    def __init__(self, settings: Settings, bootstrap: str, store_name: str, shard_names: list[str], member: int = 0) -> None:
        use_system_arrow_pool()
        # actors are looked up by name: a handle argument would pin it in the object store across restarts
        self._settings, self._store, self._member = settings, ray.get_actor(store_name), member
        self._shard_names, self._shard_handles = shard_names, []  # see _shards
        self._conf = conf = settings.kafka.client_config(bootstrap)
        self._consumer = ck.Consumer({**consumer_config(conf, settings.kafka.consumer_group), "client.id": f"ingest-{member}"})
        self._producer = ck.Producer(producer_config(conf))
        self._limits = Limits.from_settings(settings.contract)
        self._enrich = partial(enrich, tenants=settings.tenants, currency=settings.currency)
        self._decoders: dict[int, BatchDecoder] = {}
        self._states: dict[int, PartitionState] = {}  # decoder state and attribution engines, checkpointed
        self._models = PromotedModels(settings.registry_uri, settings.registry.poll_s)  # hot reload: `models promote`
        self._applied: dict[int, int] = {}  # partition -> offset through which a restart only replays
        self._checkpointed_at: dict[int, float] = {}
        self._counts = BatchCounts()
        self._tombstones = Tombstones(load_tombstones(settings.raw_uri))  # forgotten identities (hashed), per tenant
        self._seen_through: dict[int, int] = {}  # partition -> last offset its state includes
        self._lock = threading.Lock()  # a batch (decode to hand-over) and a forget request never interleave
        self._observer = BatchObserver(settings, member)  # metrics, late data, SLO alerts
        self._raw_key = raw_key(settings.raw_store)  # None: the raw archive is not encrypted
        self._phase_s: Counter = Counter()  # seconds spent per phase of applying batches
        self._phase_cpu_s: Counter = Counter()  # CPU seconds in those phases, of the thread that ran each
        self._latencies = Reservoir(_LATENCY_SAMPLES, seed=member)  # of every applied event's latency (ms)
        self._first_consumed_ms: int | None = None
        self._last_applied_ms: int | None = None
        self._error: str | None = None
        self._closing: list = []  # the shards' window-closing calls of the last batch
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"archive-{member}")
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"apply-{member}")
        self._applying: Future | None = None  # the writer's batch; its result() raises what failed there
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"ingest-{member}", daemon=True)
        self._thread.start()

    @property
    def _shards(self) -> list:  # looked up on first use: the platform starts its members before their shards
        self._shard_handles = self._shard_handles or [ray.get_actor(name) for name in self._shard_names]
        return self._shard_handles

    def stats(self) -> dict[str, Any]:
        """Counters since this incarnation started, a latency sample (ms); `error` is set if the loop died."""
        return {
            **self._counts.as_dict(),
            "member": self._member, "first_consumed_ms": self._first_consumed_ms, "last_applied_ms": self._last_applied_ms,
            "latency_ms": self._latencies.values.copy(),
            "latency_seen": self._latencies.seen,  # how many latencies the sample stands for
            "assigned": sorted(self._decoders),
            "phase_s": dict(self._phase_s), "phase_cpu_s": dict(self._phase_cpu_s), "error": self._error,
            "models": dict(self._models.versions),  # tenant -> model version crediting markov/data_driven
            "pid": os.getpid(),
            "threads": {t.native_id: t.name for t in threading.enumerate()},  # OS thread id -> Python name
        }

    def stop(self) -> None:
        """Finish the batch in hand and its window closing, leave the group and close the clients."""
        self._stop.set()
        self._thread.join(timeout=30)
        ray.get(self._closing, timeout=30)

    def _run(self) -> None:
        kafka, pipeline = self._settings.kafka, self._settings.pipeline
        try:
            warm_up()  # attribution kernels compiled before joining the group: no event waits for numba
            gc.freeze()  # modules, Ray and the kernels live as long as the process: no collection walks them again
            self._consumer.subscribe([kafka.topic_events], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                     on_lost=self._on_lost)
            while not self._stop.is_set():
                self._models.refresh(self._settings.tenants)  # re-reads the pointers every registry.poll_s
                # gc paused: up to batch_size new Message objects, which collections would walk many times;
                # no span: most polls of an idle member are empty
                with gc_paused(), self._timed("consume", traced=False):
                    messages = self._consumer.consume(pipeline.batch_size, pipeline.poll_timeout_s)
                if messages:
                    with self._lock:
                        self._apply(data_messages(messages))
                elif self._applying is not None and self._applying.done():
                    self._applied_all()  # a failed write stops the loop even while no message comes
        except Exception as exc:  # a bug or a broken dependency: surface it through stats()
            self._error = f"{type(exc).__name__}: {exc}"
            log.exception("ingest member %s stopped", self._member)
        finally:
            try:
                self._applied_all()  # the batch in the writer commits through the consumer: before closing it
            except Exception as exc:
                self._error = self._error or f"{type(exc).__name__}: {exc}"
                log.exception("ingest member %s: last batch failed", self._member)
            self._consumer.close()
            self._producer.flush(10)
            self._writer.shutdown(wait=True)
            self._pool.shutdown(wait=True)

    def _applied_all(self) -> None:
        """Wait until the writer has applied and committed its batch; raises what failed there, once."""
        applying, self._applying = self._applying, None
        if applying is not None:
            applying.result()

    def _apply(self, messages: list) -> None:
        """Decode a batch (member thread, holding the lock), then hand it to the writer once the previous
        batch is committed."""
        if not messages:
            return
        now_ms = int(time.time() * 1000)
        self._first_consumed_ms = self._first_consumed_ms or now_ms
        n = len(messages)
        # map over the C methods: no Python frame per message
        partitions = np.fromiter(map(ck.Message.partition, messages), np.int32, n)
        offsets = np.fromiter(map(ck.Message.offset, messages), np.int64, n)
        created = np.fromiter(map(itemgetter(1), map(ck.Message.timestamp, messages)), np.int64, n)
        with self._timed("lag_metrics"):
            self._observer.taken(self._consumer, self._settings.kafka.topic_events, partitions, offsets, self._states)
        with self._timed("decode"):
            out = process_batch(self._decoder_for, list(map(ck.Message.value, messages)), partitions, offsets, now_ms,
                                self._applied, created, window_rows=False, enrich_with=self._enrich,
                                attribute=self._attribute if self._settings.pipeline.attribution else None,
                                arrow=True, shards=len(self._shard_names), piece_rows=self._settings.pipeline.piece_rows)
        for partition in np.unique(partitions).tolist():
            self._seen_through[partition] = int(offsets[partitions == partition].max())
        # late rows need the watermarks before this batch, which `taken` recorded: before the next one
        with self._timed("late_rows"):
            late = self._observer.late_rows(out, now_ms) if out.ranges else None
        with self._timed("checkpoint"):  # the state as of this batch; loaded only once the ledger reaches it
            self._checkpoint_due(out.ranges)
        with self._timed("wait_for_writer"):
            self._applied_all()
        self._applying = self._writer.submit(self._commit, out, now_ms, late)

    def _commit(self, out: BatchOutput, now_ms: int, late: pa.Table | None) -> None:
        """Writer thread: apply a decoded batch, commit its offsets, start the shards' close pass."""
        if out.ranges:
            seen = self._write(out, now_ms, late)
            with self._timed("commit"):
                try:
                    self._consumer.commit(offsets=[ck.TopicPartition(self._settings.kafka.topic_events, p, last + 1)
                                                   for p, (_, last) in out.ranges.items()], asynchronous=False)
                except ck.KafkaException as exc:  # e.g. the partitions were lost meanwhile; a new owner resumes
                    # from the ledger (the KPI insert above), not from Kafka's committed offsets
                    log.warning("ingest member %s: offsets not committed to Kafka: %s", self._member, exc)
            # pipelined: the pass runs while the next batch is consumed and decoded; it must finish before
            # that batch's KPI insert (see _write), so a closed window's totals never include later batches
            self._closing = [shard.close.remote(out.watermarks, now_ms, seen.get(i, {}))
                             for i, shard in enumerate(self._shards)]
        applied_ms = int(time.time() * 1000)
        # before the counts, and not after the alert below: stats() may run in between (max_concurrency), and
        # a caller that sees the messages counted reads their apply time and latency
        self._last_applied_ms = applied_ms
        self._latencies.add(applied_ms - out.created_ms)
        self._counts.add(out.counts)
        alerts = self._observer.applied(out, applied_ms)
        if alerts.num_rows:  # an SLO breached: alerts table, then topic (keyed rows: a repeat replaces)
            ray.get(self._store.insert_arrow.remote(ALERTS, alerts))
            queue_messages(self._producer, self._settings.kafka.topic_alerts, alert_messages(alerts))
            flush_queued(self._producer, self._settings.kafka.topic_alerts)

    def _attribute(self, partition: int, events: EventColumns, applied: int) -> pa.Table:
        forgotten = self._tombstones.rows(events["tenant_id"], events)
        events = events.take(~forgotten) if forgotten.any() else events  # tombstoned persons enter no journey
        if self._models.versions:  # a model is promoted: its values on the engines of the batch's tenants
            self._models.install(self._states[partition].attribution, dict.fromkeys(events["tenant_id"].tolist()),
                                 self._settings.tenants)
        return attribute_partition(self._states[partition], events, self._settings.tenants, applied)

    def forget(self, tenant: str, nodes: list[str]) -> list[str]:
        """Right to be forgotten in this member: tombstone `nodes` (identity nodes, `user_id:u1`), drop their
        person from every held partition's engine, rewrite those partitions' checkpoints (older ones still
        hold the person); the identity nodes the engines removed (the person's linked ids)."""
        with self._lock:
            self._applied_all()  # the person's rows of the batch in the writer are written before this returns
            removed: set[str] = set()
            for partition, state in list(self._states.items()):
                engine = state.attribution.get(tenant)
                if engine is None:
                    continue
                for node in nodes:
                    removed.update(engine.forget(node))
                if partition in self._seen_through:
                    save_checkpoint(self._settings.raw_uri, partition, self._seen_through[partition], state, keep=1,
                                    key=self._raw_key)
            hashes = {identity_hash(tenant, node) for node in (*nodes, *removed)}
            self._tombstones.add(tenant, hashes)
            return sorted(removed)

    def holds(self, tenant: str, nodes: list[str]) -> int:
        """How many of these identity nodes the engines of this member's partitions know (0 once forgotten)."""
        with self._lock:
            engines = [s.attribution[tenant] for s in list(self._states.values()) if tenant in s.attribution]
            return sum(node in engine.graph for engine in engines for node in nodes)

    def person(self, tenant: str, nodes: list[str]) -> list[str]:
        """Every identity node linked to any of `nodes` in the identity graphs of this member's partitions."""
        with self._lock:
            # a list first: a rebalance callback (the member thread, inside consume) may change the dict
            engines = [s.attribution[tenant] for s in list(self._states.values()) if tenant in s.attribution]
            return sorted({name for engine in engines for node in nodes
                           for name in engine.graph.names_of(engine.graph.person_slots(node))})

    def _decoder_for(self, partition: int) -> BatchDecoder:
        if partition not in self._decoders:  # a partition assigned without restore (should not happen)
            self._states[partition] = PartitionState()
            self._decoders[partition] = BatchDecoder(self._settings.tenants, self._limits, self._states[partition].decoder)
        return self._decoders[partition]

    def _window_rows(self, out: BatchOutput, now_ms: int) -> tuple[list, dict[int, dict[str, int]]]:
        """Ask each tenant shard for the window rows of its slice (only the columns windows need); also
        each shard's tenants in this batch with their partition, which its close pass needs."""
        slices = out.shard_slices or {}
        seen = {s: tenant_partitions(part) for s, part in slices.items()}
        return [self._shards[s].window_rows.remote(part, out.ranges, now_ms) for s, part in slices.items()], seen

    def _archive(self, out: BatchOutput) -> None:
        started = time.perf_counter()
        kept = ~self._tombstones.rows(out.events["tenant_id"], out.events)
        stems = {partition: slice_name(partition, first, last) for partition, (first, last) in out.ranges.items()}
        archive_partitions(out.events_arrow, self._settings.raw_uri, stems, self._raw_key, keep=kept)
        self._phase_s["raw_archive (overlapped)"] += time.perf_counter() - started

    def _write(self, out: BatchOutput, now_ms: int, late: pa.Table) -> dict[int, dict[str, int]]:
        """Raw archive, quarantine (topic, then table), then the KPI rows: the last write is the commit point.

        The Parquet writes (which release the GIL) run in a thread while the shards compute window rows
        and the quarantine is written; all of it is durable before the KPI insert. Returns each shard's
        tenants in the batch, with their partition, for the shards' close pass.
        """
        archived = self._pool.submit(self._archive, out)
        pending_rows, seen = self._window_rows(out, now_ms)
        token = "_".join(slice_name(p, a, b) for p, (a, b) in sorted(out.ranges.items()))
        if out.quarantine_rows.num_rows:
            self._quarantine(out, token)
        with self._timed("window_rows"):
            window_rows = ray.get(pending_rows)
        with self._timed("raw_archive"):
            archived.result()
        with self._timed("close_windows"):
            ray.get(self._closing)  # the previous batch's pass; its errors surface here
            self._closing = []
        if out.credit_rows is not None and out.credit_rows.num_rows:
            with self._timed("attribution_insert"):  # keyed rows: a replay replaces them
                ray.get(self._store.insert_arrow.remote(ATTRIBUTION, out.credit_rows))
        if late.num_rows:  # keyed by batch slice: a replayed batch replaces its rows
            ray.get(self._store.insert_arrow.remote(LATE, late))
        with self._timed("kpi_insert"):
            kpi_rows = pa.concat_tables([*window_rows, out.kpi_rows])  # window rows and the ledger, one insert
            ray.get(self._store.insert_arrow.remote(KPI, kpi_rows, f"kpi-{token}"))
        return seen

    def _quarantine(self, out: BatchOutput, token: str) -> None:
        with self._timed("quarantine"):
            topic = self._settings.kafka.topic_quarantine
            forgotten = forgotten_raw([r.raw for r in out.rejects], self._tombstones.hashes)  # of forgotten persons
            for r in (r for r, gone in zip(out.rejects, forgotten, strict=True) if not gone):
                headers = [("reason", r.reason.code), ("partition", str(r.partition)), ("offset", str(r.offset))]
                queue_message(self._producer, topic, r.raw, headers=headers)
            flush_queued(self._producer, topic)
            rows = out.quarantine_rows.filter(pa.array(~forgotten)) if forgotten.any() else out.quarantine_rows
            ray.get(self._store.insert_arrow.remote(QUARANTINE, rows, f"q-{token}"))

    @contextmanager
    def _timed(self, phase: str, traced: bool = True) -> Iterator[None]:
        started, cpu_started = time.perf_counter(), time.thread_time()
        try:
            with span(f"ingest.{phase}", member=self._member) if traced else nullcontext():
                yield
        finally:
            self._phase_s[phase] += time.perf_counter() - started
            self._phase_cpu_s[phase] += time.thread_time() - cpu_started

    def _checkpoint_due(self, ranges: dict[int, tuple[int, int]]) -> None:
        every = self._settings.pipeline.checkpoint_every_s
        for partition, (_, last) in ranges.items():
            if time.monotonic() - self._checkpointed_at.get(partition, 0.0) >= every:
                save_checkpoint(self._settings.raw_uri, partition, last, self._states[partition], key=self._raw_key)
                self._checkpointed_at[partition] = time.monotonic()

    def _on_assign(self, consumer: ck.Consumer, partitions: list[ck.TopicPartition]) -> None:
        self._applied_all()  # the ledger read below includes every batch this member decoded
        ledger = dict(ray.get(self._store.query_rows.remote(ledger_sql(self._settings.warehouse.database))))
        applied_at = {tp.partition: int(ledger.get(tp.partition, -1)) for tp in partitions}
        check_same_topic(consumer, self._store, self._conf, self._settings, ledger, applied_at)  # not one created again
        for tp in partitions:
            applied = applied_at[tp.partition]
            remove_after(self._settings.raw_uri, tp.partition, applied)
            drop_checkpoints_after(self._settings.raw_uri, tp.partition, applied)
            restored = (load_checkpoint(self._settings.raw_uri, tp.partition, applied, self._raw_key,
                                        self._settings.raw_store.read_plain_checkpoints) if applied >= 0 else None)
            state = restored[1] if restored else PartitionState()
            self._states[tp.partition] = state
            self._decoders[tp.partition] = BatchDecoder(self._settings.tenants, self._limits, state.decoder)
            self._applied[tp.partition] = applied
            self._checkpointed_at[tp.partition] = time.monotonic()
            tp.offset = restored[0] + 1 if restored else ck.OFFSET_BEGINNING
        log.info("member %s assigned %s", self._member, [(tp.partition, tp.offset) for tp in partitions])
        consumer.assign(partitions)

    def _on_revoke(self, consumer: ck.Consumer, partitions: list[ck.TopicPartition]) -> None:
        self._applied_all()  # commit the batch in the writer while the partitions are still this member's
        for tp in partitions:  # every batch is committed now; forget the state, the next owner restores
            self._decoders.pop(tp.partition, None)
            self._states.pop(tp.partition, None)
            self._applied.pop(tp.partition, None)

    def _on_lost(self, consumer: ck.Consumer, partitions: list[ck.TopicPartition]) -> None:
        log.warning("ingest member %s lost %d partitions; nothing committed for them", self._member, len(partitions))
        self._on_revoke(consumer, partitions)


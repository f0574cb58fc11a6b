"""IngestActor: one member of the consumer group on `marketing-events`.

Consume a batch, decode it with the contract code, write rejects to the quarantine topic and table and
the batch's KPI rows (which carry its offset ledger) to the warehouse, then commit. A restarted member
resumes after the highest offset the warehouse already holds for each partition it is assigned, so a
batch applied before a crash is not applied again. Rebalance roles (house style): assign = restore
from the ledger; revoke = nothing pending, because every batch is committed before the next poll;
lost = drop without committing.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

# referenced through the module: the classes' __module__ is `cimpl`, which Ray's pickling of actor classes
# cannot import by name on the worker
import confluent_kafka as ck
import numpy as np
import ray

from mkt_ray.contract import BatchDecoder, Limits
from mkt_ray.errors import BrokerError
from mkt_ray.kafka import consumer_config, producer_config
from mkt_ray.pipeline import KPI_1M, QUARANTINE, BatchCounts, BatchOutput, process_batch
from mkt_ray.rawstore import archive_events
from mkt_ray.settings import Settings

log = logging.getLogger("mkt_ray.ingest")


@ray.remote(num_cpus=0.25, max_concurrency=4, max_restarts=-1)
class IngestActor:
    def __init__(self, settings: Settings, bootstrap: str, store_name: str, member: int = 0) -> None:
        # the store is looked up by name: a handle argument would pin it in the object store across restarts
        self._settings, self._store, self._member = settings, ray.get_actor(store_name), member
        conf = settings.kafka.client_config(bootstrap)
        self._consumer = ck.Consumer(
            {**consumer_config(conf, settings.kafka.consumer_group), "client.id": f"ingest-{member}"}
        )
        self._producer = ck.Producer(producer_config(conf))
        self._decoder = BatchDecoder(settings.tenants, Limits.from_settings(settings.contract))
        self._counts = BatchCounts()
        self._first_consumed_ms: int | None = None
        self._last_applied_ms: int | None = None
        self._error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"ingest-{member}", daemon=True)
        self._thread.start()

    def stats(self) -> dict[str, Any]:
        """Counters since this incarnation started; `error` is set if the loop died."""
        return {
            **self._counts.as_dict(),
            "member": self._member,
            "first_consumed_ms": self._first_consumed_ms,
            "last_applied_ms": self._last_applied_ms,
            "error": self._error,
        }

    def stop(self) -> None:
        """Finish the batch in hand, leave the group and close the clients."""
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        kafka, pipeline = self._settings.kafka, self._settings.pipeline
        try:
            self._consumer.subscribe([kafka.topic_events], on_assign=self._on_assign, on_lost=self._on_lost)
            while not self._stop.is_set():
                messages = self._consumer.consume(pipeline.batch_size, pipeline.poll_timeout_s)
                if messages:
                    self._apply([m for m in messages if not _skippable(m)])
        except Exception as exc:  # a bug or a broken dependency: surface it through stats(), then crash
            self._error = f"{type(exc).__name__}: {exc}"
            log.exception("ingest member %s stopped", self._member)
        finally:
            self._consumer.close()
            self._producer.flush(10)

    def _apply(self, messages: list) -> None:
        if not messages:
            return
        now_ms = int(time.time() * 1000)
        self._first_consumed_ms = self._first_consumed_ms or now_ms
        partitions = np.fromiter((m.partition() for m in messages), np.int32, len(messages))
        offsets = np.fromiter((m.offset() for m in messages), np.int64, len(messages))
        out = process_batch(self._decoder, [m.value() for m in messages], partitions, offsets, now_ms)
        self._write(out)
        topic = self._settings.kafka.topic_events
        self._consumer.commit(
            offsets=[ck.TopicPartition(topic, p, last + 1) for p, (_, last) in out.ranges.items()],
            asynchronous=False,
        )
        self._counts.add(out.counts)
        self._last_applied_ms = int(time.time() * 1000)

    def _write(self, out: BatchOutput) -> None:
        """Raw archive, quarantine (topic, then table) and KPI rows, durably, before the offsets are committed."""
        token = "_".join(f"p{p}-{a}-{b}" for p, (a, b) in sorted(out.ranges.items()))
        archive_events(out.decoded.events, self._settings.raw_uri, token)
        if out.quarantine_rows.num_rows:
            topic = self._settings.kafka.topic_quarantine
            for r in out.decoded.rejects:
                headers = [
                    ("reason", r.reason.code),
                    ("partition", str(r.partition)),
                    ("offset", str(r.offset)),
                ]
                self._producer.produce(topic, r.raw, headers=headers)
                self._producer.poll(0)
            if self._producer.flush(30) > 0:
                raise BrokerError(f"quarantine topic {topic}: messages still queued after 30 s")
            ray.get(self._store.insert_arrow.remote(QUARANTINE, out.quarantine_rows, f"q-{token}"))
        ray.get(self._store.insert_arrow.remote(KPI_1M, out.kpi_rows, f"kpi-{token}"))

    def _on_assign(self, consumer: ck.Consumer, partitions: list[ck.TopicPartition]) -> None:
        ledger = dict(
            ray.get(
                self._store.query_rows.remote(
                    f"SELECT partition, max(last_offset) FROM {self._settings.warehouse.database}.{KPI_1M} GROUP BY partition"
                )
            )
        )
        for tp in partitions:
            if tp.partition in ledger:
                tp.offset = int(ledger[tp.partition]) + 1
        consumer.assign(partitions)

    def _on_lost(self, consumer: ck.Consumer, partitions: list[ck.TopicPartition]) -> None:
        log.warning(
            "ingest member %s lost %d partitions; nothing committed for them", self._member, len(partitions)
        )


def _skippable(message: Any) -> bool:
    error = message.error()
    if error is None:
        return False
    if error.code() == ck.KafkaError._PARTITION_EOF:
        return True
    raise BrokerError(f"consume failed on {message.topic()}[{message.partition()}]: {error}")

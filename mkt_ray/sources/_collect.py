"""The event collector's logic: a request body in, contract-valid events produced to Kafka, a verdict out.

Every message is judged by the contract's reference classifier (`classify`, the same code that decides
reason codes in the pipeline), plus one collector rule: its `tenant_id` must be the caller's
(`tenant_mismatch`). Valid messages are produced unchanged, keyed by tenant. The pipeline drops
duplicates by `event_id` anyway; the collector also remembers the ids it delivered recently (a bounded
LRU), so a client retrying a request after a timeout or a 503 does not put the same events on the topic
again. The stateful contract rules (duplicates within 24 h, outliers) stay with the pipeline, which sees
every producer, not only this one.

Backpressure is explicit (`BackpressureError` with `retry_after`): too many requests in flight, or a
producer queue that stays full (the broker is slow or down).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import confluent_kafka as ck
import msgspec

from mkt_ray.contract import Limits, classify
from mkt_ray.errors import BackpressureError, BrokerError, InputError
from mkt_ray.kafka import producer_config, queue_message

TENANT_MISMATCH = "tenant_mismatch"


class _Keys(msgspec.Struct):
    tenant_id: str
    event_id: str


class BodyError(InputError):
    """A request body the collector cannot read as events; `code` is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class TooManyRequests(BackpressureError):
    """Every request slot is taken (answered 429; a full producer queue is 503)."""


_KEYS = msgspec.json.Decoder(_Keys).decode
_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw]).decode


def split_body(body: bytes, max_events: int) -> list[bytes]:
    """The messages of a request body: a JSON array (each element's exact bytes) or NDJSON (one per line).

    BodyError for an empty body, an array that is not JSON, or more than `max_events` messages. A line
    of NDJSON that is not JSON is a message like any other: the contract gives it its reason code.
    """
    text = body.strip()
    if not text:
        raise BodyError("empty_body", "send a JSON array of events or NDJSON (one event per line)")
    if text.startswith(b"["):
        try:
            messages = [bytes(raw) for raw in _RAW_LIST(text)]
        except msgspec.DecodeError as exc:
            raise BodyError("invalid_json", f"the body starts with '[' but is not a JSON array ({exc})") from None
    else:
        messages = [line.strip() for line in text.split(b"\n") if line.strip()]
    if len(messages) > max_events:
        raise BodyError("too_many_events", f"{len(messages)} events in one request; send at most {max_events}")
    return messages


class RecentIds:
    """The last `capacity` (tenant, event_id) pairs delivered: memory stays bounded, oldest forgotten first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, keys: Sequence[tuple[str, str]]) -> None:
        with self._lock:
            for key in keys:
                self._ids[key] = None
                self._ids.move_to_end(key)
            while len(self._ids) > self.capacity:
                self._ids.popitem(last=False)


@dataclass
class Verdict:
    """What happened to each message of one request."""

    accepted: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (position in the request, reason)

    def body(self, max_errors: int = 100) -> dict[str, Any]:
        """The JSON answer: counts, reason counts and the first `max_errors` rejected positions."""
        return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": len(self.rejected),
                "reasons": dict(Counter(reason for _, reason in self.rejected)),
                "errors": [{"index": i, "reason": r} for i, r in self.rejected[:max_errors]]}


class EventCollector:
    """Validates and produces events for many concurrent requests through one long-lived producer."""

    def __init__(self, kafka_conf: Mapping[str, Any], topic: str, tenants: Mapping[str, object] | Sequence[str],
                 limits: Limits | None = None, max_in_flight: int = 8, recent_ids: int = 200_000,
                 queue_wait_s: float = 2.0, flush_timeout_s: float = 10.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.topic = topic
        self.tenants = frozenset(tenants)
        self.limits = limits or Limits()
        self.recent = RecentIds(recent_ids)
        self.queue_wait_s = queue_wait_s
        self.flush_timeout_s = flush_timeout_s
        self.clock = clock
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._producer = ck.Producer(producer_config(dict(kafka_conf)))

    @contextmanager
    def slot(self) -> Iterator[None]:
        """One of the `max_in_flight` request slots, or BackpressureError at once (the caller answers 429)."""
        if not self._slots.acquire(blocking=False):
            raise TooManyRequests("too many collector requests in flight", retry_after=1.0)
        try:
            yield
        finally:
            self._slots.release()

    def judge(self, tenant: str, messages: Sequence[bytes]) -> tuple[Verdict, list[tuple[int, tuple[str, str]]]]:
        """The verdict on each message, and the (position, key) of those to produce, without producing."""
        verdict, fresh, seen = Verdict(), [], set()
        now_ms = int(self.clock() * 1000)
        for position, raw in enumerate(messages):
            reason = classify(raw, self.tenants, now_ms, self.limits)
            if reason is not None:
                verdict.rejected.append((position, reason.code))
                continue
            keys = _KEYS(raw)
            if keys.tenant_id != tenant:
                verdict.rejected.append((position, TENANT_MISMATCH))
                continue
            key = (keys.tenant_id, keys.event_id)
            if key in seen or key in self.recent:
                verdict.duplicates += 1
                continue
            seen.add(key)
            fresh.append((position, key))
        return verdict, fresh

    def collect(self, tenant: str, messages: Sequence[bytes]) -> Verdict:
        """Judge the messages of one request for `tenant`, produce the valid new ones, wait for the broker.

        BackpressureError if the producer queue stays full for `queue_wait_s` (what was queued before is
        delivered and remembered, so a retry of the same request produces only the rest); BrokerError
        if the broker did not confirm every message within `flush_timeout_s`.
        """
        verdict, fresh = self.judge(tenant, messages)
        failed: list[str] = []

        def on_delivery(err: ck.KafkaError | None, _msg: ck.Message) -> None:
            if err is not None:  # only errors are reported (producer_config)
                failed.append(err.str())

        queued: list[tuple[str, str]] = []
        key = tenant.encode()
        try:
            for position, ids in fresh:
                self._produce(messages[position], key, on_delivery)
                queued.append(ids)
        finally:
            remaining = self._producer.flush(self.flush_timeout_s)
            if not failed and not remaining:
                self.recent.add(queued)
        if failed or remaining:
            raise BrokerError(f"{len(failed) + remaining} of {len(queued)} events to topic {self.topic!r} were not "
                              f"confirmed by the broker (first: {failed[0] if failed else 'still queued'}); retry")
        verdict.accepted = len(queued)
        return verdict

    def _produce(self, raw: bytes, key: bytes, on_delivery: Callable[..., None]) -> None:
        try:
            queue_message(self._producer, self.topic, raw, key, on_delivery=on_delivery, wait_s=self.queue_wait_s)
        except BrokerError:
            raise BackpressureError(f"the producer queue for topic {self.topic!r} is full",
                                    retry_after=max(1.0, self.queue_wait_s)) from None

    def close(self) -> None:
        """Deliver what is queued (bounded by `flush_timeout_s`)."""
        self._producer.flush(self.flush_timeout_s)

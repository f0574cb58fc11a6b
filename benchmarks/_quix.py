"""The Quix Streams baseline: per (tenant, campaign) tumbling 1-minute event-time windows of the five measures.

`run_quix_baseline(bootstrap, topic, expected_messages)` runs a Quix Streams 3.28 `Application` over the
JSON events of `topic` and returns its window sums, so benchmarks/pipeline.py can run it side by side with
mkt-ray on the same broker and the same events and cross-check the totals. Needs the `bench` extra
(`pip install -e '.[bench]'`).

The pipeline is the one the Quix docs teach for this job:
    app.dataframe(topic)                                  # JSON values, event time from `timestamp`
      .apply(_measures)                                   # [tenant, campaign, 5 measures]
      .group_by(_window_key, name="tenant_campaign")      # re-key through Quix's repartition topic
      .tumbling_window(60_000, grace_ms=_GRACE_MS)
      .reduce(_add_measures, _first_measures)             # one state read + write per event
      .current()                                          # every update of a window, as it happens
      .update(record)                                     # keep the latest value per window; count
`.current()`, not `.final()`: `.final()` emits a window only once the key's stream time passes its end plus
the grace, so the last windows of every key would never be emitted and the totals would be incomplete.
The latest `.current()` value of a window is its complete total once every event has been processed.
The workload delivers events up to ~27 minutes out of order (measured on generate_workload), so the grace
is a week: no event is ever late; a late event would be a silently dropped measure, so it raises instead.

Tuning on Tansu (see mkt_ray/kafka/_clients.py): the consumer gets the 6 s session timeout and large
fetches, its producer (repartition and changelog topics) mkt-ray's batching. Measured at 200k events on the
2-core dev machine: with Quix's own client defaults the run starts processing after 23.7 s (the first
JoinGroup waits session.timeout.ms / 2), with these after 3.3 s; the processing rate is ~25k events/s
either way (~8 s of CPU).
"""

from __future__ import annotations

import contextlib
import gc
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from mkt_ray.kafka import consumer_config, producer_config

WINDOW_MS = 60_000
MEASURES = ("impressions", "clicks", "conversions", "cost", "revenue")
_GRACE_MS = 7 * 86_400_000
_KAFKA_DEFAULT_RETENTION_MS = 7 * 86_400_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
# Quix owns these consumer/producer keys (or must see every delivery report to track changelog offsets)
_QUIX_OWNED = {"group.id", "enable.auto.commit", "auto.offset.reset", "delivery.report.only.error"}
_PRODUCER_KEYS = ("linger.ms", "batch.num.messages", "batch.size", "compression.type")

WindowKey = tuple[str, str, int]


def run_quix_baseline(
    bootstrap: str, topic: str, expected_messages: int, timeout_s: float = 600
) -> dict[str, Any]:
    """Run the Quix baseline over `topic` from the earliest offset until `expected_messages` are processed.

    Returns {"events", "wall_s", "startup_s", "cpu_s", "events_per_s", "windows"}: `windows` maps
    (tenant_id, campaign_id or "", window_start_ms) to [impressions, clicks, conversions, cost, revenue];
    `wall_s` is the whole run (setup, topic creation, group join, processing, final commit), `startup_s`
    the part before the first event was consumed, `events_per_s` = events / (wall_s - startup_s), and
    `cpu_s` the process CPU time of the whole run (all threads, librdkafka's included).
    Stops itself with `app.stop()` once the last expected event has updated its window (a fresh consumer
    group per run, so it always starts at the earliest offset); raises TimeoutError after `timeout_s`.
    """
    Application = _application_class()
    state_dir = tempfile.mkdtemp(prefix="quix-state-")
    run = _Run(expected_messages)
    try:
        with _restored_signal_handlers():
            app = Application(
                broker_address=bootstrap,
                consumer_group=f"quix-baseline-{uuid.uuid4().hex[:12]}",
                auto_offset_reset="earliest",
                state_dir=state_dir,
                consumer_extra_config=_consumer_extra(),
                producer_extra_config=_producer_extra(),
                loglevel="WARNING",
            )
            run.stop = app.stop
            _build_pipeline(app, topic, run)
            run.execute(app, timeout_s)
    finally:
        run.stop = app = None
        gc.collect()  # Quix never closes its librdkafka clients: free them while the broker is still up
        shutil.rmtree(state_dir, ignore_errors=True)
    return run.result()


def _application_class() -> Any:
    try:
        from quixstreams import Application
    except ImportError as exc:
        raise ImportError(
            "the Quix Streams baseline needs quixstreams 3.28: run `pip install -e '.[bench]'`"
        ) from exc
    return Application


def _consumer_extra() -> dict[str, Any]:
    conf = consumer_config({}, group_id="unused")
    return {k: v for k, v in conf.items() if k not in _QUIX_OWNED}


def _producer_extra() -> dict[str, Any]:
    conf = producer_config({})
    return {k: conf[k] for k in _PRODUCER_KEYS}


def _build_pipeline(app: Any, topic: str, run: _Run) -> None:
    source = app.topic(topic, value_deserializer="json", timestamp_extractor=_event_time_ms)
    _fill_retention(source)
    sdf = app.dataframe(source)
    sdf = sdf.apply(run.measures)
    sdf = sdf.group_by(_window_key, name="tenant_campaign")
    sdf = sdf.tumbling_window(WINDOW_MS, grace_ms=_GRACE_MS, on_late=_raise_late)
    sdf = sdf.reduce(reducer=_add_measures, initializer=_first_measures).current()
    sdf.update(run.record, metadata=True)


def _fill_retention(source: Any) -> None:
    """Quix derives its repartition and changelog topic configs from the source topic's `retention.ms` and
    `retention.bytes` (a KeyError without them); Tansu describes only the configs a topic was created with,
    so a topic created without them gets Kafka's defaults here (7 days, unbounded)."""
    extra = source.broker_config.extra_config
    extra.setdefault("retention.ms", str(_KAFKA_DEFAULT_RETENTION_MS))
    extra.setdefault("retention.bytes", "-1")


def _event_time_ms(value: Any, headers: Any, timestamp: float, timestamp_type: Any) -> int:
    """Event time: the event's ISO-8601 `timestamp` (with a zone, "Z" allowed) in epoch milliseconds."""
    # integer arithmetic: float seconds * 1000 can land 1 ms early, and at a minute boundary in the window before
    return (datetime.fromisoformat(value["timestamp"]) - _EPOCH) // _ONE_MS


def _measures(event: dict[str, Any]) -> list[Any]:
    """[tenant, campaign or "", impressions, clicks, conversions, cost, revenue]; missing or null = 0,
    except a conversion event's conversions (1)."""
    metrics = event.get("performance_metrics") or {}
    conversion_default = 1 if event.get("event_type") == "conversion" else 0
    row = [event["tenant_id"], event.get("campaign_id") or ""]
    for name in MEASURES:
        value = metrics.get(name)
        row.append(value if value is not None else (conversion_default if name == "conversions" else 0))
    return row


def _window_key(row: list[Any]) -> str:
    # tenant ids match ^[a-z0-9][a-z0-9_-]*$, so the first "/" separates them from any campaign id
    return f"{row[0]}/{row[1]}"


def _first_measures(row: list[Any]) -> list[Any]:
    return row[2:]


def _add_measures(total: list[Any], row: list[Any]) -> list[Any]:
    return [total[0] + row[2], total[1] + row[3], total[2] + row[4], total[3] + row[5], total[4] + row[6]]


def _raise_late(value: Any, key: Any, timestamp_ms: int, late_by_ms: int, start: int, *rest: Any) -> bool:
    raise RuntimeError(
        f"quix baseline: event of window key {key!r} at {timestamp_ms} ms is {late_by_ms} ms later than"
        f" the {_GRACE_MS} ms grace (window {start}); its measures would be dropped: raise the grace"
    )


class _Run:
    """The counting sink and the clocks of one run; `record` stops the app at the last expected event."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.windows: dict[WindowKey, list[Any]] = {}
        self.stop: Any = None
        self.started = self.first = self.ended = 0.0
        self.cpu_s = 0.0

    def measures(self, event: dict[str, Any]) -> list[Any]:
        if not self.first:
            self.first = time.perf_counter()
        return _measures(event)

    def record(self, value: dict[str, Any], key: str, timestamp: int, headers: Any) -> None:
        tenant, _, campaign = key.partition("/")
        self.windows[(tenant, campaign, value["start"])] = value["value"]
        self.count += 1
        if self.count >= self.expected:
            self.stop()

    def execute(self, app: Any, timeout_s: float) -> None:
        timer = threading.Timer(timeout_s, app.stop)
        timer.daemon = True
        cpu0, self.started = time.process_time(), time.perf_counter()
        timer.start()
        try:
            app.run()
        finally:
            timer.cancel()
            self.ended, self.cpu_s = time.perf_counter(), time.process_time() - cpu0
        if self.count < self.expected:
            raise TimeoutError(
                f"quix baseline processed {self.count} of {self.expected} events in {timeout_s:.0f} s;"
                " check that the topic holds them all"
            )

    def result(self) -> dict[str, Any]:
        wall_s = self.ended - self.started
        startup_s = (self.first or self.ended) - self.started
        processing_s = max(wall_s - startup_s, 1e-9)
        return {
            "events": self.count,
            "wall_s": wall_s,
            "startup_s": startup_s,
            "cpu_s": self.cpu_s,
            "events_per_s": self.count / processing_s,
            "windows": self.windows,
        }


@contextlib.contextmanager
def _restored_signal_handlers() -> Iterator[None]:
    """`Application.run()` installs SIGINT/SIGTERM handlers for its own loop; give the caller's back after."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            if threading.current_thread() is threading.main_thread():
                signal.signal(sig, handler)

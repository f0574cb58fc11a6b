"""Where events come from besides producers writing the topic: the collector's logic and CDP mappings.

`EventCollector` judges request bodies with the contract code and produces the valid events;
`segment_events` / `posthog_events` map Segment Spec and PostHog capture payloads to contract events.
"""

from mkt_ray.sources._collect import (
    TENANT_MISMATCH,
    BodyError,
    EventCollector,
    RecentIds,
    TooManyRequests,
    Verdict,
    split_body,
)
from mkt_ray.sources._common import MappedBatch
from mkt_ray.sources._posthog import posthog_events
from mkt_ray.sources._segment import segment_events

__all__ = [
    "TENANT_MISMATCH",
    "BodyError",
    "EventCollector",
    "MappedBatch",
    "RecentIds",
    "TooManyRequests",
    "Verdict",
    "posthog_events",
    "segment_events",
    "split_body",
]

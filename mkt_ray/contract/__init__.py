"""The event contract v1 in code: one definition, a fast batch decoder, a reference classifier."""

from mkt_ray.contract._classify import Limits, classify
from mkt_ray.contract._columns import EventColumns, arrow_schema, columns_from_events, is_none
from mkt_ray.contract._decoder import BatchDecoder, DecodedBatch, DecoderState, Rejection, gc_paused
from mkt_ray.contract._dedup import DedupIndex
from mkt_ray.contract._groups import factorize, group_column, group_rows
from mkt_ray.contract._jsonschema import json_schema
from mkt_ray.contract._outlier import OutlierGuard
from mkt_ray.contract._reasons import REASON_CODES, Reason
from mkt_ray.contract._rules import epoch_ms
from mkt_ray.contract._schema import (
    EVENT_TYPE_CODE,
    EVENT_TYPES,
    IDENTITY_FIELDS,
    SCHEMA_VERSION,
    USER_LEVEL_TYPES,
    Event,
    WireEvent,
)

__all__ = [
    "EVENT_TYPES",
    "EVENT_TYPE_CODE",
    "IDENTITY_FIELDS",
    "REASON_CODES",
    "SCHEMA_VERSION",
    "USER_LEVEL_TYPES",
    "BatchDecoder",
    "DecodedBatch",
    "DecoderState",
    "DedupIndex",
    "Event",
    "EventColumns",
    "Limits",
    "OutlierGuard",
    "Reason",
    "Rejection",
    "WireEvent",
    "arrow_schema",
    "classify",
    "columns_from_events",
    "epoch_ms",
    "factorize",
    "gc_paused",
    "group_column",
    "group_rows",
    "is_none",
    "json_schema",
]

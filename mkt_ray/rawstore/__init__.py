"""The raw store: valid events as immutable Parquet, `tenant_id=/date=/event_type=/`, local or s3://."""

from mkt_ray.rawstore._archive import (
    archive_events,
    archive_partitions,
    raw_dataset,
    raw_partitioning,
    read_raw,
    remove_after,
    slice_name,
)
from mkt_ray.rawstore._encryption import (
    LocalKmsClient,
    RawKeyError,
    is_sealed,
    parse_key,
    raw_key,
    seal,
    unseal,
)
from mkt_ray.rawstore._events import events_from_arrow, read_events
from mkt_ray.rawstore._forget import (
    TOMBSTONES_FOLDER,
    Tombstones,
    forget_raw_rows,
    forgotten_raw,
    forgotten_rows,
    identity_hash,
    identity_nodes,
    linked_nodes,
    load_tombstones,
    save_tombstones,
)

__all__ = [
    "LocalKmsClient",
    "RawKeyError",
    "TOMBSTONES_FOLDER",
    "Tombstones",
    "archive_events",
    "archive_partitions",
    "events_from_arrow",
    "forget_raw_rows",
    "forgotten_raw",
    "forgotten_rows",
    "identity_hash",
    "identity_nodes",
    "is_sealed",
    "linked_nodes",
    "load_tombstones",
    "parse_key",
    "raw_dataset",
    "raw_partitioning",
    "raw_key",
    "read_events",
    "read_raw",
    "remove_after",
    "save_tombstones",
    "seal",
    "slice_name",
    "unseal",
]

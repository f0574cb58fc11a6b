"""The raw store: valid events as immutable Parquet, `tenant_id=/date=/event_type=/`, local or s3://."""

from mkt_ray.rawstore._archive import archive_events, read_raw, remove_after, slice_name

__all__ = ["archive_events", "read_raw", "remove_after", "slice_name"]

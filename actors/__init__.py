"""Ray actors: each owns state and I/O and calls library functions in `mkt_ray`."""

from actors.store import StoreActor, start_store_actor

__all__ = ["StoreActor", "start_store_actor"]

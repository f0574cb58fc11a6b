"""Ray actors: each owns state and I/O and calls library functions in `mkt_ray`.

Import the module you need (`actors.store`, `actors.shard`, ...): each actor's worker process imports
only its own module's dependencies (the shards, for one, never load chDB).
"""

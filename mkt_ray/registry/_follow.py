"""The running pipeline's view of the registry: each tenant's promoted model, re-read every few seconds.

Ingest members hold one `PromotedModels`; before attributing a batch they call `refresh` (which reads
the tenants' pointers at most every `poll_s` seconds) and `install` (which sets the promoted channel
values on the partition's attribution engines, creating a tenant's engine first if the batch is its
first). So a `promote` reaches the credits of the conversions processed after the next poll, without a
restart. A registry that cannot be read (network, a half-copied entry) keeps the values in use and is
logged: ingestion must not stop because the model store is down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from mkt_ray.errors import MktRayError
from mkt_ray.registry._store import ModelRegistry
from mkt_ray.settings import TenantConfig

if TYPE_CHECKING:
    from mkt_ray.attribution import TenantAttribution

log = logging.getLogger("mkt_ray.registry")
FITTED = ("markov", "data_driven")


class PromotedModels:
    """Promoted version and channel values per tenant, refreshed from the registry."""

    def __init__(self, uri: str, poll_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = ModelRegistry(uri)
        self.poll_s = poll_s
        self.clock = clock
        self.versions: dict[str, str] = {}  # tenant -> promoted version in use
        self._values: dict[str, dict[str, dict[str, float]]] = {}  # tenant -> model -> channel -> value
        self._read_at = -float("inf")

    def refresh(self, tenants: Iterable[str]) -> None:
        """Re-read the pointers of `tenants` if `poll_s` has passed since the last read."""
        now = self.clock()
        if now - self._read_at < self.poll_s:
            return
        self._read_at = now
        for tenant in tenants:
            try:
                version = self.registry.promoted(tenant)
                if version is not None and version != self.versions.get(tenant):
                    values = self.registry.entry(tenant, version)["channel_values"]
                    self._values[tenant] = {model: dict(values[model]) for model in FITTED}
                    self.versions[tenant] = version
                    log.info("tenant %s: model %s promoted", tenant, version)
            except (MktRayError, OSError, KeyError, ValueError) as exc:
                log.warning("tenant %s: cannot read the promoted model from %s (%s); keeping %s",
                            tenant, self.registry.uri, exc, self.versions.get(tenant, "the fallback"))

    def install(self, engines: dict[str, TenantAttribution], tenants: Iterable[str],
                configs: Mapping[str, TenantConfig]) -> None:
        """Set the promoted values on the engines of `tenants` (creating missing engines) where they differ."""
        from mkt_ray.attribution import TenantAttribution  # numba kernels: loaded by the pipeline only

        for tenant in tenants:
            values = self._values.get(tenant)
            if values is None:
                continue
            engine = engines.get(tenant)
            if engine is None:
                engine = engines[tenant] = TenantAttribution(configs.get(tenant) or TenantConfig())
            for model in FITTED:
                if engine.channel_values.get(model) != values[model]:
                    engine.set_channel_values(model, values[model])

"""The model registry: versioned attribution models per tenant, a promoted pointer the pipeline follows."""

from mkt_ray.registry._follow import PromotedModels
from mkt_ray.registry._store import ModelRegistry

__all__ = ["ModelRegistry", "PromotedModels"]

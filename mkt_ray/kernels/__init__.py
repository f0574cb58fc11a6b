"""Numba kernels: pure functions over numpy arrays (no Ray, Kafka or logging inside)."""

from mkt_ray.kernels._jit import JIT_OPTIONS
from mkt_ray.kernels.attribution import RULE_MODELS, model_code, rule_credits, rule_credits_by_name
from mkt_ray.kernels.windows import (
    WINDOW_KINDS,
    closed_before,
    derived_kpis,
    merge_window_sums,
    window_sums,
)

__all__ = [
    "JIT_OPTIONS",
    "RULE_MODELS",
    "WINDOW_KINDS",
    "closed_before",
    "derived_kpis",
    "merge_window_sums",
    "model_code",
    "rule_credits",
    "rule_credits_by_name",
    "window_sums",
]

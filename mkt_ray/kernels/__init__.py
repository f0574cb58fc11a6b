"""Numba kernels: pure functions over numpy arrays (no Ray, Kafka or logging inside)."""

from mkt_ray.kernels._jit import JIT_OPTIONS
from mkt_ray.kernels.kpi import group_sums

__all__ = ["JIT_OPTIONS", "group_sums"]

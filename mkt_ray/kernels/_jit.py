"""The one place that holds the Numba options every kernel uses."""

from numba import njit

JIT_OPTIONS = {"cache": True, "nogil": True}

jit = njit(**JIT_OPTIONS)

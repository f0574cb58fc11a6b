"""Tests for mkt_ray.kernels."""

"""The `mkt-ray` command line (also `python -m mkt_ray`)."""

from mkt_ray.cli._main import main

__all__ = ["main"]

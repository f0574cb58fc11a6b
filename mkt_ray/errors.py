"""The exceptions mkt-ray raises. One root, a few subclasses; messages say where and what to do."""

from __future__ import annotations


class MktRayError(Exception):
    """Root of every error mkt-ray raises on purpose."""


class ConfigError(MktRayError):
    """Settings or a tenant registry entry is wrong; the message names the key."""


class BrokerError(MktRayError):
    """The Kafka-compatible broker could not be started, reached or used."""


class WarehouseError(MktRayError):
    """The warehouse (chDB or ClickHouse) refused a statement or could not be opened."""


class InputError(MktRayError):
    """A file or argument given on the command line cannot be used."""


class BackpressureError(MktRayError):
    """A downstream stage is full; retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def missing_dependency(module: str, pip_name: str) -> MktRayError:
    """The error for an optional dependency that is not installed, naming the fix."""
    return MktRayError(f"{module} is not installed; run `pip install {pip_name}`")

"""OpenTelemetry spans from ingest to query, with the exporter optional.

`span(name, **attributes)` opens a span under the tracer `mkt_ray` when `opentelemetry-api` is
installed (Ray installs it); without an SDK configured the API's tracer is a no-op that costs well
under a microsecond, so the pipeline always calls it. `configure_tracing(endpoint)` installs the SDK
with an OTLP exporter when `opentelemetry-exporter-otlp` is installed; a process that wants another
exporter installs its own TracerProvider instead. Ingest opens one span per batch phase
(`ingest.decode`, `ingest.kpi_insert`, ...); the query API wraps each request in `span("query ...")`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mkt_ray.errors import ConfigError

try:
    from opentelemetry import trace
except ImportError:  # tracing is optional
    trace = None  # type: ignore[assignment]

TRACER_NAME = "mkt_ray"


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[Any]:
    """A span named `name` (a no-op without opentelemetry); yields the span or None."""
    if trace is None:
        yield None
        return
    with trace.get_tracer(TRACER_NAME).start_as_current_span(name, attributes=attributes) as current:
        yield current


def configure_tracing(endpoint: str, service_name: str = "mkt-ray") -> None:
    """Export spans over OTLP/HTTP to `endpoint` (needs `pip install opentelemetry-sdk opentelemetry-exporter-otlp`)."""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise ConfigError(
            f"observability.otlp_endpoint is set but the exporter is missing ({exc.name}); "
            "pip install opentelemetry-sdk opentelemetry-exporter-otlp"
        ) from exc
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)

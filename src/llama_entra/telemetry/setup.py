"""``start_tracing``: the OpenTelemetry SDK, an OTLP exporter and the instrumentations.

Called once per process by the commands (``serve``, ``proxy``) after logging is set up, and
only when ``tracing_settings`` says tracing is on: when it is off nothing here runs, no
instrumentation is installed and no request pays for tracing.

What the instrumentations make (no hand-written span where one of them can):
- a server span per request: FastAPI's instrumentation for the service, the ASGI middleware
  for the proxy (probes and ``/metrics`` excluded, no per-``send`` spans);
- a client span per outgoing httpx call (the service-mode Llama Stack client, llama-stack's
  Azure client in library mode) with W3C ``traceparent`` injected, so a Llama Stack server run
  under ``opentelemetry-instrument`` joins the trace;
- a client span per aiohttp call (the proxy's upstream, azure-identity's token requests).
No instrumentation records headers, so neither the provider-data header nor ``Authorization``
reaches a span.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from starlette.types import ASGIApp

from llama_entra.telemetry.logcontext import TraceContextFilter
from llama_entra.telemetry.settings import TracingSettings

__all__ = ["EXCLUDED_URLS", "Tracing", "start_tracing"]

logger = logging.getLogger(__name__)

# Probes and scrapes: frequent, uninteresting, and they would drown the traces that matter.
EXCLUDED_URLS = "/liveness,/readiness,/metrics,/healthz,/readyz"


def _exporter(settings: TracingSettings) -> SpanExporter:
    if settings.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter(endpoint=settings.endpoint)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter(endpoint=settings.endpoint)


class Tracing:
    """The process's tracer provider and installed instrumentations; ``shutdown`` flushes."""

    def __init__(self, settings: TracingSettings, exporter: SpanExporter | None = None) -> None:
        self.settings = settings
        resource = Resource.create({SERVICE_NAME: settings.service_name})
        self.provider = TracerProvider(resource=resource)
        self.provider.add_span_processor(BatchSpanProcessor(exporter or _exporter(settings)))
        self._httpx = HTTPXClientInstrumentor()
        self._aiohttp = AioHttpClientInstrumentor()
        self._log_filter = TraceContextFilter()

    def install(self) -> None:
        """Make this the global tracer provider; instrument httpx, aiohttp and log records."""
        trace.set_tracer_provider(self.provider)
        self._httpx.instrument(tracer_provider=self.provider)
        self._aiohttp.instrument(tracer_provider=self.provider)
        for handler in logging.getLogger().handlers:
            handler.addFilter(self._log_filter)
        logger.info(
            "tracing on: OTLP %s to %s as %s",
            self.settings.protocol,
            self.settings.endpoint or "the endpoint OTEL_EXPORTER_OTLP_* names",
            self.settings.service_name,
        )

    def instrument_fastapi(self, app: Any) -> None:
        """Server spans for the service's FastAPI app."""
        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=self.provider,
            excluded_urls=EXCLUDED_URLS,
            exclude_spans=["receive", "send"],
        )

    def wrap_asgi(self, app: ASGIApp) -> ASGIApp:
        """Server spans for a plain ASGI app (the proxy)."""
        middleware: ASGIApp = OpenTelemetryMiddleware(
            app,
            excluded_urls=EXCLUDED_URLS,
            tracer_provider=self.provider,
            exclude_spans=["receive", "send"],
        )
        return middleware

    def shutdown(self) -> None:
        """Export what is pending and stop; the instrumentations are removed."""
        self._httpx.uninstrument()
        self._aiohttp.uninstrument()
        for handler in logging.getLogger().handlers:
            handler.removeFilter(self._log_filter)
        self.provider.shutdown()


def start_tracing(settings: TracingSettings | None) -> Tracing | None:
    """Install tracing for this process when ``settings`` (tracing on); else do nothing."""
    if settings is None:
        return None
    tracing = Tracing(settings)
    tracing.install()
    return tracing

"""The SDK's in-memory exporter as the process's tracer provider, set once for these tests.

OpenTelemetry allows one global tracer provider per process; spans made elsewhere in the
same run land here too, so each test clears the exporter first.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="session")
def _global_provider() -> TracerProvider:
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        current.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        return current
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    trace.set_tracer_provider(provider)
    return provider


@pytest.fixture
def exported(_global_provider: TracerProvider) -> Iterator[InMemorySpanExporter]:
    """The spans ended during the test."""
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()

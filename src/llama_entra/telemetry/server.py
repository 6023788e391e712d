"""The Llama Stack/OGX server under ``opentelemetry-instrument`` when tracing is on.

Neither llama-stack 0.7.3 nor OGX 1.5 makes HTTP server or client spans of its own: both
leave that to OpenTelemetry's auto-instrumentation (they only set up OTLP *metrics* from
``OTEL_EXPORTER_OTLP_ENDPOINT``). Run under ``opentelemetry-instrument``, the server gets a
FastAPI server span per request, which continues the trace of the caller's W3C
``traceparent`` (llama-entra's service mode sends it), and an httpx client span for its call
to Azure OpenAI. The rule is the service's: on when an ``OTEL_EXPORTER_OTLP_*ENDPOINT`` is
set, off with ``OTEL_SDK_DISABLED=true``.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from llama_entra.telemetry.settings import otlp_endpoint_in, sdk_disabled

__all__ = ["INSTRUMENT", "traced_server"]

INSTRUMENT = "opentelemetry-instrument"


def _instrument_command() -> str:
    beside = Path(sys.executable).parent / INSTRUMENT
    return str(beside) if beside.exists() else (shutil.which(INSTRUMENT) or INSTRUMENT)


def traced_server(
    command: list[str], environ: Mapping[str, str], *, service_name: str
) -> tuple[list[str], dict[str, str]]:
    """``command`` and its environment, wrapped in ``opentelemetry-instrument`` if tracing is on.

    Defaults (each kept when already set): OTLP over HTTP, traces only (the server exports
    its metrics itself), ``service.name`` ``service_name``.
    """
    environment = dict(environ)
    if sdk_disabled(environ) or otlp_endpoint_in(environ) is None:
        return command, environment
    defaults = {
        "OTEL_SERVICE_NAME": service_name,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }
    for name, value in defaults.items():
        environment.setdefault(name, value)
    return [_instrument_command(), *command], environment

"""Whether tracing is on, and where its spans go.

On when the service config says so (``telemetry.tracing: true`` or ``telemetry.endpoint``) or
when OpenTelemetry's own ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT``
is set; ``OTEL_SDK_DISABLED=true`` turns it off whatever else says. Keys the config leaves out
fall back to OpenTelemetry's variables, then to OTLP over HTTP.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from llama_entra.config import TelemetryConfig
from llama_entra.errors import ConfigError

__all__ = ["Protocol", "TracingSettings", "otlp_endpoint_in", "sdk_disabled", "tracing_settings"]

Protocol = Literal["http/protobuf", "grpc"]
_PROTOCOLS: tuple[Protocol, ...] = ("http/protobuf", "grpc")


@dataclass(frozen=True, slots=True)
class TracingSettings:
    """Where spans go. ``endpoint`` None: the exporter reads OpenTelemetry's variables."""

    protocol: Protocol
    service_name: str
    endpoint: str | None = None


def sdk_disabled(environ: Mapping[str, str]) -> bool:
    """``OTEL_SDK_DISABLED=true`` (OpenTelemetry's switch for the whole SDK)."""
    return environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def otlp_endpoint_in(environ: Mapping[str, str]) -> str | None:
    """The OTLP traces endpoint OpenTelemetry's variables name, if any."""
    return (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or None
    )


def tracing_settings(
    config: TelemetryConfig,
    *,
    default_service_name: str,
    environ: Mapping[str, str] | None = None,
) -> TracingSettings | None:
    """The settings when tracing is on, else None. ``ConfigError`` for an unknown protocol."""
    env = os.environ if environ is None else environ
    if sdk_disabled(env):
        return None
    if not (config.tracing or config.endpoint or otlp_endpoint_in(env)):
        return None
    protocol = (
        config.protocol
        or env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    if protocol not in _PROTOCOLS:
        raise ConfigError(
            f"OTLP protocol {protocol!r} is not supported (http/protobuf or grpc)",
            key="OTEL_EXPORTER_OTLP_PROTOCOL",
        )
    endpoint = config.endpoint
    if endpoint is not None and protocol == "http/protobuf":
        endpoint = endpoint.rstrip("/") + "/v1/traces"
    service_name = config.service_name or env.get("OTEL_SERVICE_NAME") or default_service_name
    return TracingSettings(protocol=protocol, service_name=service_name, endpoint=endpoint)

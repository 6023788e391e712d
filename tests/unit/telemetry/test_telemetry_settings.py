"""Unit tests of when tracing is on and where spans go (``llama_entra.telemetry.settings``)."""

from __future__ import annotations

import pytest

from llama_entra.config import TelemetryConfig
from llama_entra.errors import ConfigError
from llama_entra.telemetry.settings import TracingSettings, tracing_settings

OFF = TelemetryConfig()


def _settings(config: TelemetryConfig, **environ: str) -> TracingSettings | None:
    return tracing_settings(config, default_service_name="llama-entra", environ=environ)


def test_telemetry_settings_off_without_config_or_endpoint_variable() -> None:
    assert _settings(OFF) is None
    assert _settings(OFF, OTEL_SERVICE_NAME="x", OTEL_EXPORTER_OTLP_PROTOCOL="grpc") is None


@pytest.mark.parametrize(
    "variable", ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
)
def test_telemetry_settings_on_with_an_endpoint_variable_left_to_the_exporter(
    variable: str,
) -> None:
    settings = _settings(OFF, **{variable: "http://collector:4318"})
    assert settings == TracingSettings("http/protobuf", "llama-entra", endpoint=None)


def test_telemetry_settings_sdk_disabled_wins_over_everything() -> None:
    on = TelemetryConfig(tracing=True, endpoint="http://collector:4318")
    environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "TRUE"}
    assert _settings(on, **environ) is None
    assert _settings(on, OTEL_SDK_DISABLED="false") is not None


def test_telemetry_settings_config_endpoint_gets_the_http_traces_path() -> None:
    config = TelemetryConfig(endpoint="http://collector:4318/")
    assert _settings(config) == TracingSettings(
        "http/protobuf", "llama-entra", "http://collector:4318/v1/traces"
    )
    grpc = TelemetryConfig(endpoint="http://collector:4317", protocol="grpc")
    assert _settings(grpc) == TracingSettings("grpc", "llama-entra", "http://collector:4317")


def test_telemetry_settings_protocol_and_name_config_then_variables_then_defaults() -> None:
    on = TelemetryConfig(tracing=True)
    assert _settings(on, OTEL_EXPORTER_OTLP_PROTOCOL="grpc").protocol == "grpc"  # type: ignore[union-attr]
    traces_first = _settings(
        on, OTEL_EXPORTER_OTLP_PROTOCOL="grpc", OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/protobuf"
    )
    assert traces_first is not None and traces_first.protocol == "http/protobuf"
    named = _settings(on, OTEL_SERVICE_NAME="from-env")
    assert named is not None and named.service_name == "from-env"
    configured = _settings(TelemetryConfig(tracing=True, service_name="cfg"), OTEL_SERVICE_NAME="e")
    assert configured is not None and configured.service_name == "cfg"


def test_telemetry_settings_unsupported_protocol_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="http/json"):
        _settings(TelemetryConfig(tracing=True), OTEL_EXPORTER_OTLP_PROTOCOL="http/json")


def test_telemetry_config_rejects_a_non_url_endpoint() -> None:
    with pytest.raises(ValueError, match="http"):
        TelemetryConfig(endpoint="collector:4318")


def test_telemetry_exporter_follows_the_protocol() -> None:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter as GrpcExporter,
    )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    from llama_entra.telemetry.setup import _exporter

    grpc = _exporter(TracingSettings("grpc", "x", "http://127.0.0.1:4317"))
    assert isinstance(grpc, GrpcExporter)
    grpc.shutdown()
    http = _exporter(TracingSettings("http/protobuf", "x", "http://127.0.0.1:4318/v1/traces"))
    assert isinstance(http, HttpExporter)
    assert http._endpoint == "http://127.0.0.1:4318/v1/traces"
    http.shutdown()

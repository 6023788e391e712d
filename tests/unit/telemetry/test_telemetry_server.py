"""Unit tests of the Llama Stack server command under ``opentelemetry-instrument``."""

from __future__ import annotations

from pathlib import Path

from llama_entra.telemetry.server import traced_server

COMMAND = ["llama", "stack", "run", "run.yaml"]


def test_telemetry_server_command_unchanged_when_tracing_is_off() -> None:
    command, env = traced_server(COMMAND, {"PATH": "/bin"}, service_name="llama-stack")
    assert command == COMMAND
    assert env == {"PATH": "/bin"}
    disabled = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}
    assert traced_server(COMMAND, disabled, service_name="ogx")[0] == COMMAND


def test_telemetry_server_runs_under_opentelemetry_instrument_with_an_endpoint() -> None:
    environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SERVICE_NAME": "mine"}
    command, env = traced_server(COMMAND, environ, service_name="ogx")
    assert Path(command[0]).name == "opentelemetry-instrument"
    assert Path(command[0]).exists()  # installed with the project, next to this Python
    assert command[1:] == COMMAND
    assert env["OTEL_SERVICE_NAME"] == "mine"  # kept
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert env["OTEL_TRACES_EXPORTER"] == "otlp"
    assert env["OTEL_METRICS_EXPORTER"] == "none"

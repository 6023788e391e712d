"""Unit tests of the hand-made spans: the token manager's, and what a failed span may say."""

from __future__ import annotations

import logging

import pytest
from azure.core.exceptions import ClientAuthenticationError
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from llama_entra.errors import TokenRejectedError
from llama_entra.logs import TextFormatter
from llama_entra.telemetry import spans
from llama_entra.telemetry.logcontext import TraceContextFilter
from support.entra import FakeClock, FakeEntra, fake_manager


async def test_telemetry_spans_token_fetch_once_then_cache_hits(
    exported: InMemorySpanExporter,
) -> None:
    manager = fake_manager(FakeEntra(FakeClock()))
    with spans.span("request"):
        await manager.token()
        await manager.token()
    await manager.aclose()
    finished = exported.get_finished_spans()
    by_name = {}
    for span in finished:
        by_name.setdefault(span.name, []).append(span)
    (request,) = by_name["request"]
    first, second = by_name["entra.token"]
    (fetch,) = by_name["entra.token.fetch"]
    assert first.attributes is not None and second.attributes is not None
    assert first.attributes["entra.token.source"] == "fetch"
    assert second.attributes["entra.token.source"] == "cache"
    assert first.parent is not None and first.parent.span_id == request.context.span_id
    assert fetch.parent is not None and fetch.parent.span_id == first.context.span_id
    assert fetch.attributes == {
        "entra.identity": manager.identity,
        "entra.credential": "client_secret",
        "entra.outcome": "success",
        "entra.token.expires_in_s": 3600,
    }
    text = repr([span.to_json() for span in finished])
    assert "token-1" not in text and "s3cr3t-fake" not in text


async def test_telemetry_spans_rejected_fetch_marks_both_spans_failed_without_the_secret(
    exported: InMemorySpanExporter,
) -> None:
    entra = FakeEntra(FakeClock())
    entra.failures.append(
        ClientAuthenticationError(
            message="(invalid_client) AADSTS7000215: Invalid client secret provided."
        )
    )
    manager = fake_manager(entra)
    with pytest.raises(TokenRejectedError):
        await manager.token()
    await manager.aclose()
    finished = {span.name: span for span in exported.get_finished_spans()}
    fetch = finished["entra.token.fetch"]
    assert fetch.attributes is not None and fetch.attributes["entra.outcome"] == "rejected"
    assert fetch.status.status_code is StatusCode.ERROR
    assert finished["entra.token"].status.status_code is StatusCode.ERROR
    assert "Invalid client secret" in (fetch.status.description or "")  # the 503 cause
    for span in finished.values():
        assert not span.events  # exceptions are not recorded: their text is not ours
        assert "s3cr3t-fake" not in span.to_json()


def test_telemetry_spans_foreign_errors_are_described_by_type_only() -> None:
    assert spans.safe_description(ValueError("api key sk-123 leaked")) == "ValueError"
    assert "Entra ID" in spans.safe_description(TokenRejectedError("invalid client secret"))


def test_telemetry_spans_request_id_only_on_a_recording_span(
    exported: InMemorySpanExporter,
) -> None:
    spans.tag_request("outside")  # no current span: nothing happens, nothing fails
    with spans.span("server"):
        spans.tag_request("abc123")
    (server,) = exported.get_finished_spans()
    assert server.attributes == {"llama_entra.request_id": "abc123"}


def test_telemetry_log_records_inside_a_span_carry_its_trace_id(
    exported: InMemorySpanExporter,
) -> None:
    formatter = TextFormatter("%(message)s")
    outside = logging.makeLogRecord({"msg": "outside"})
    assert TraceContextFilter().filter(outside)
    assert formatter.format(outside) == "outside"
    with spans.span("server") as current:
        inside = logging.makeLogRecord({"msg": "inside"})
        TraceContextFilter().filter(inside)
    trace_id = f"{current.get_span_context().trace_id:032x}"
    assert inside.trace_id == trace_id
    assert formatter.format(inside) == f"inside trace_id={trace_id}"

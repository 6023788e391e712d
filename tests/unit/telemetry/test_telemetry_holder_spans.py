"""Unit tests of the client holder's spans: the Llama Stack call and the 401 refresh-and-retry."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from llama_entra.backends import ListedModel, ListedProvider
from llama_entra.config import LlamaEntraConfig
from llama_entra.errors import (
    AzureThrottledError,
    UpstreamAuthError,
    UpstreamConnectionError,
    UpstreamError,
)
from llama_entra.stack import ClientHolder
from support.entra import FakeClock, FakeEntra, fake_manager


class _Stack:
    """Listings only; the operations are given per test."""

    error_hook = None

    async def list_providers(self) -> list[ListedProvider]:
        return [ListedProvider("azure", "remote::azure", {"base_url": "https://r.example/v1"})]

    async def list_models(self) -> list[ListedModel]:
        return [ListedModel("azure/gpt-4o-mini", "azure", "gpt-4o-mini", "llm")]


def _holder(mode: str = "library") -> ClientHolder:
    config = LlamaEntraConfig.model_validate({"llama_stack": {"mode": mode}})
    tokens = fake_manager(FakeEntra(FakeClock()))
    return ClientHolder(config, _Stack(), tokens, mode=mode)  # type: ignore[arg-type]


def _named(exported: InMemorySpanExporter) -> dict[str, list[ReadableSpan]]:
    found: dict[str, list[ReadableSpan]] = {}
    for span in exported.get_finished_spans():
        found.setdefault(span.name, []).append(span)
    return found


def _parent(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def test_telemetry_holder_401_retry_is_a_child_span_with_the_new_fetch(
    exported: InMemorySpanExporter,
) -> None:
    holder = _holder()
    model = await holder.resolve_model("gpt-4o-mini")
    calls = 0

    async def operation(headers: dict[str, str], model_id: str) -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise UpstreamError("expired", status=401)
        return "answer"

    assert await holder.call(model, operation, name="chat_completions") == "answer"
    named = _named(exported)
    (call,) = named["llama_stack.chat_completions"]
    (retry,) = named["azure.unauthorized_retry"]
    first, second = sorted(named["entra.token"], key=lambda s: s.start_time or 0)
    assert call.attributes is not None
    assert call.attributes["llama_stack.mode"] == "library"
    assert call.attributes["gen_ai.request.model"] == "azure/gpt-4o-mini"
    assert call.status.status_code is StatusCode.UNSET
    assert _parent(retry) == call.context.span_id
    assert retry.attributes == {"llama_entra.retry.reason": "azure_401"}
    assert _parent(first) == call.context.span_id
    assert _parent(second) == retry.context.span_id
    assert [_parent(f) for f in named["entra.token.fetch"]] == [
        first.context.span_id,
        second.context.span_id,
    ]


async def test_telemetry_holder_second_401_fails_the_call_span_with_the_safe_cause(
    exported: InMemorySpanExporter,
) -> None:
    holder = _holder()
    model = await holder.resolve_model("gpt-4o-mini")

    async def operation(headers: dict[str, str], model_id: str) -> str:
        raise UpstreamError("expired", status=401)

    with pytest.raises(UpstreamAuthError):
        await holder.call(model, operation)
    named = _named(exported)
    (call,) = named["llama_stack.call"]
    (retry,) = named["azure.unauthorized_retry"]
    for span in (call, retry):
        assert span.status.status_code is StatusCode.ERROR
        assert "freshly issued" in (span.status.description or "")
        assert not span.events


async def test_telemetry_holder_dropped_service_stream_retry_and_stream_span(
    exported: InMemorySpanExporter,
) -> None:
    holder = _holder("service")
    model = await holder.resolve_model("gpt-4o-mini")
    attempts = 0

    async def chunks() -> AsyncIterator[str]:
        yield "a"
        yield "b"

    async def operation(headers: dict[str, str], model_id: str) -> AsyncIterator[str]:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise UpstreamConnectionError("dropped")
        return chunks()

    stream = holder.stream(model, operation, name="chat_completions")
    assert await anext(stream) == "a"
    assert "llama_stack.chat_completions" not in _named(exported)  # open while streaming
    assert [chunk async for chunk in stream] == ["b"]
    named = _named(exported)
    (call,) = named["llama_stack.chat_completions"]
    (retry,) = named["azure.unauthorized_retry"]
    assert retry.attributes == {"llama_entra.retry.reason": "stream_dropped"}
    assert _parent(retry) == call.context.span_id
    assert call.attributes is not None and call.attributes["llama_stack.mode"] == "service"


class _TwoResources(_Stack):
    """``azure`` and the enricher's copy of it for a second resource."""

    async def list_providers(self) -> list[ListedProvider]:
        second = {"base_url": "https://s.example/v1"}
        return [
            *await super().list_providers(),
            ListedProvider("azure-resource-2", "remote::azure", second),
        ]

    async def list_models(self) -> list[ListedModel]:
        copy = ListedModel("azure-resource-2/gpt-4o-mini", "azure-resource-2", "gpt-4o-mini", "llm")
        return [*await super().list_models(), copy]


async def test_telemetry_holder_span_names_the_resource_that_served_a_moved_call(
    exported: InMemorySpanExporter,
) -> None:
    urls = ["https://r.example/v1", "https://s.example/v1"]
    config = LlamaEntraConfig.model_validate(
        {
            "llama_stack": {"mode": "library"},
            "azure_entra_id": {
                "credential": "managed_identity",
                "endpoints": {"azure": {"base_urls": urls}},
            },
        }
    )
    tokens = fake_manager(FakeEntra(FakeClock()))
    holder = ClientHolder(config, _TwoResources(), tokens, mode="library")  # type: ignore[arg-type]
    model = await holder.resolve_model("gpt-4o-mini")
    assert [m.id for m in await holder.models()] == ["azure/gpt-4o-mini"]  # the copy is hidden
    sent: list[str] = []

    async def operation(headers: dict[str, str], model_id: str) -> str:
        sent.append(model_id)
        if len(sent) == 1:
            raise AzureThrottledError("busy", retry_after=30)
        return "answer"

    assert await holder.call(model, operation, name="chat_completions") == "answer"
    assert sent == ["azure/gpt-4o-mini", "azure-resource-2/gpt-4o-mini"]
    (call,) = _named(exported)["llama_stack.chat_completions"]
    assert call.attributes is not None
    assert call.attributes["llama_entra.azure.deployment"] == "https://s.example/v1"

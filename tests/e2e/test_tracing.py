"""End-to-end: OpenTelemetry traces from real servers to a local OTLP receiver.

The service (library and service mode), the Llama Stack/OGX server and the proxy run as real
processes with OpenTelemetry's own variables pointed at ``support.otlp``'s receiver, which
decodes every ``ExportTraceServiceRequest`` they post. The emulator's recorded Azure requests
give the real tokens, so every exported span can be searched for them.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from llama_entra.backends import active_backend
from support.emulator import EmulatorHandle
from support.otlp import OtlpReceiver, ReceivedSpan, otlp_receiver
from support.service import (
    ServiceHandle,
    free_port,
    running_server,
    service_config,
    stack_environment,
    start_llama_stack,
    start_service,
)

pytestmark = pytest.mark.slow

SERVER, CLIENT = 2, 3  # OTLP span kinds
# llama-stack 0.7.3's remote::azure calls Azure with a new openai.AsyncOpenAI (httpx) per call,
# which the httpx instrumentation sees; OGX's library mode reaches Azure through a client it
# does not see, so there the in-process Azure hop has no span of its own (see README).
AZURE_CLIENT_SPAN_IN_LIBRARY = active_backend().name == "llama-stack"


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as running:
        yield running


def _otel_env(receiver: OtlpReceiver, service_name: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_SERVICE_NAME": service_name,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # export within 0.1 s, not the default 5 s
    }


@pytest.fixture(scope="module")
def traced_service(
    emulator: EmulatorHandle, receiver: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceHandle]:
    """A library-mode service with tracing on through OTEL_EXPORTER_OTLP_ENDPOINT alone."""
    directory = tmp_path_factory.mktemp("traced-library")
    path = service_config(directory, emulator)
    env = stack_environment(emulator, directory / "state") | _otel_env(receiver, "llama-entra")
    with start_service(path, env) as handle:
        yield handle


def _query(url: str, text: str) -> str:
    """POST /v1/query with a fresh request id; returns it."""
    request_id = uuid.uuid4().hex
    response = httpx.post(
        f"{url}/v1/query",
        json={"query": text, "generate_topic_summary": False},
        headers={"X-Request-ID": request_id},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == request_id
    return request_id


def _trace_of(receiver: OtlpReceiver, request_id: str, *names: str) -> list[ReceivedSpan]:
    """The spans of the trace whose server span carries ``request_id``, once ``names`` arrived."""

    def server_span(spans: list[ReceivedSpan]) -> ReceivedSpan | None:
        found = [s for s in spans if s.attributes.get("llama_entra.request_id") == request_id]
        return found[0] if found else None

    def complete(spans: list[ReceivedSpan]) -> bool:
        root = server_span(spans)
        if root is None:
            return False
        present = {s.name for s in spans if s.trace_id == root.trace_id}
        return set(names) <= present

    spans = receiver.wait_for(complete)
    root = server_span(spans)
    assert root is not None
    return [s for s in spans if s.trace_id == root.trace_id]


def _one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def _children(spans: list[ReceivedSpan], parent: ReceivedSpan) -> list[ReceivedSpan]:
    return [s for s in spans if s.parent_id == parent.span_id]


def test_tracing_first_query_is_one_trace_with_token_fetch_and_llama_stack_call(
    traced_service: ServiceHandle, receiver: OtlpReceiver, emulator: EmulatorHandle
) -> None:
    request_id = _query(traced_service.url, "traced")
    spans = _trace_of(
        receiver,
        request_id,
        "POST /v1/query",
        "llama_stack.chat_completions",
        "entra.token",
        "entra.token.fetch",
    )
    root = _one(spans, "POST /v1/query")
    assert root.kind == SERVER
    assert root.parent_id == ""
    assert root.service == "llama-entra"
    assert {s.service for s in spans} == {"llama-entra"}
    call = _one(spans, "llama_stack.chat_completions")
    assert call.parent_id == root.span_id
    assert call.attributes["llama_stack.mode"] == "library"
    assert call.attributes["llama_stack.backend"] == active_backend().name
    assert call.attributes["gen_ai.request.model"] == f"azure/{emulator.model}"
    token = _one(spans, "entra.token")
    assert token.parent_id == call.span_id
    assert token.attributes["entra.token.source"] == "fetch"
    fetch = _one(spans, "entra.token.fetch")
    assert fetch.parent_id == token.span_id
    assert fetch.attributes["entra.outcome"] == "success"
    assert fetch.attributes["entra.credential"] == "client_secret"
    # azure-identity's request to the token endpoint: an aiohttp client span under the fetch.
    to_entra = [s for s in _children(spans, fetch) if s.kind == CLIENT]
    assert len(to_entra) == 1
    azure_calls = [s for s in _children(spans, call) if s.kind == CLIENT]
    assert len(azure_calls) == (1 if AZURE_CLIENT_SPAN_IN_LIBRARY else 0)
    # Every span of the trace hangs under the server span.
    by_id = {s.span_id: s for s in spans}
    for span in spans:
        while span.parent_id:
            span = by_id[span.parent_id]
        assert span is root


def test_tracing_later_query_shows_a_cache_hit_and_no_fetch(
    traced_service: ServiceHandle, receiver: OtlpReceiver
) -> None:
    _query(traced_service.url, "warm")  # the token is held from here on
    request_id = _query(traced_service.url, "cached")
    spans = _trace_of(receiver, request_id, "llama_stack.chat_completions", "entra.token")
    token = _one(spans, "entra.token")
    assert token.attributes["entra.token.source"] == "cache"
    assert "entra.token.fetch" not in {s.name for s in spans}
    fetches = [s for s in receiver.snapshot() if s.name == "entra.token.fetch"]
    assert len(fetches) == 1  # one token request for the whole module so far


def test_tracing_azure_401_shows_the_refresh_and_retry(
    traced_service: ServiceHandle, receiver: OtlpReceiver, emulator: EmulatorHandle
) -> None:
    _query(traced_service.url, "before revocation")
    emulator.revoke_all_tokens()
    request_id = _query(traced_service.url, "after revocation")
    spans = _trace_of(receiver, request_id, "azure.unauthorized_retry", "entra.token.fetch")
    call = _one(spans, "llama_stack.chat_completions")
    retry = _one(spans, "azure.unauthorized_retry")
    assert retry.parent_id == call.span_id
    assert retry.attributes["llama_entra.retry.reason"] == "azure_401"
    tokens = [s for s in spans if s.name == "entra.token"]
    assert [t.parent_id == retry.span_id for t in tokens].count(True) == 1
    fetch = _one(spans, "entra.token.fetch")
    assert by_parent(spans, fetch) in tokens
    assert fetch.attributes["entra.outcome"] == "success"


def by_parent(spans: list[ReceivedSpan], span: ReceivedSpan) -> ReceivedSpan:
    return next(s for s in spans if s.span_id == span.parent_id)


def test_tracing_log_records_carry_the_trace_id(
    traced_service: ServiceHandle, receiver: OtlpReceiver
) -> None:
    request_id = _query(traced_service.url, "logged")
    spans = _trace_of(receiver, request_id, "POST /v1/query")
    trace_id = spans[0].trace_id
    lines = [line for line in traced_service.logs().splitlines() if request_id in line]
    assert lines, "no log line for the request"
    assert all(f"trace_id={trace_id}" in line for line in lines), lines


def test_tracing_streaming_query_span_covers_the_stream(
    traced_service: ServiceHandle, receiver: OtlpReceiver
) -> None:
    request_id = uuid.uuid4().hex
    with httpx.stream(
        "POST",
        f"{traced_service.url}/v1/streaming_query",
        json={"query": "streamed", "generate_topic_summary": False},
        headers={"X-Request-ID": request_id},
        timeout=60,
    ) as response:
        assert response.status_code == 200
        body = response.read().decode()
    assert '"event": "end"' in body
    spans = _trace_of(
        receiver, request_id, "POST /v1/streaming_query", "llama_stack.chat_completions"
    )
    root = _one(spans, "POST /v1/streaming_query")
    call = _one(spans, "llama_stack.chat_completions")  # exported: it ended with the stream
    assert call.parent_id == root.span_id
    assert call.status_message == ""
    assert call.start_ns < call.end_ns <= root.end_ns
    token = _one(spans, "entra.token")
    assert token.parent_id == call.span_id
    assert token.attributes["entra.token.source"] == "cache"


def _proxy_config(directory: Path, emulator: EmulatorHandle) -> Path:
    document = {
        "azure_entra_id": {
            "tenant_id": emulator.tenant_id,
            "client_id": emulator.client_id,
            "client_secret": emulator.client_secret,
            "authority_host": emulator.url,
            "ca_bundle": str(emulator.ca_path),
            "timeout_seconds": 5,
        },
        "proxy": {"upstream": emulator.azure_base_url, "ca_bundle": str(emulator.ca_path)},
    }
    path = directory / "proxy.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_tracing_proxy_upstream_call_and_retry(
    emulator: EmulatorHandle, receiver: OtlpReceiver, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [
        str(Path(sys.executable).parent / "llama-entra"),
        "proxy",
        "-c",
        str(_proxy_config(tmp_path, emulator)),
        "--port",
        str(port),
    ]
    env = stack_environment(emulator, tmp_path) | _otel_env(receiver, "llama-entra-proxy")
    body = {"model": emulator.model, "messages": [{"role": "user", "content": "via proxy"}]}
    with running_server(command, env, tmp_path / "proxy.log", f"{base}/healthz", base):
        first = httpx.post(f"{base}/chat/completions", json=body, timeout=30)
        assert first.status_code == 200, first.text
        emulator.revoke_all_tokens()
        second = httpx.post(f"{base}/chat/completions", json=body, timeout=30)
        assert second.status_code == 200, second.text

        def proxy_retry(spans: list[ReceivedSpan]) -> bool:
            # Both requests' server spans too: the first one's may end (and be exported) after
            # the second request's retry span when the machine is busy.
            proxy = [s for s in spans if s.service == "llama-entra-proxy"]
            retried = any(s.name == "azure.unauthorized_retry" for s in proxy)
            return retried and sum(1 for s in proxy if s.kind == SERVER) >= 2

        spans = [s for s in receiver.wait_for(proxy_retry) if s.service == "llama-entra-proxy"]
    roots = [s for s in spans if s.kind == SERVER]
    assert len(roots) == 2
    assert all(s.parent_id == "" for s in roots)
    for root in roots:
        trace = [s for s in spans if s.trace_id == root.trace_id]
        upstream = [s for s in _children(trace, root) if s.kind == CLIENT]
        retries = [s for s in _children(trace, root) if s.name == "azure.unauthorized_retry"]
        assert len(upstream) == 1  # the first (or only) upstream call
        if retries:
            (retry,) = retries
            again = [s for s in _children(trace, retry) if s.kind == CLIENT]
            assert len(again) == 1  # the retried upstream call, under the retry span
            assert any(s.name == "entra.token" for s in _children(trace, retry))
    assert sum(1 for s in spans if s.name == "azure.unauthorized_retry") == 1


def test_tracing_service_mode_trace_includes_the_llama_stack_server_spans(
    emulator: EmulatorHandle, receiver: OtlpReceiver, tmp_path: Path
) -> None:
    backend = active_backend().name
    stack_dir = tmp_path / "stack"
    stack_dir.mkdir()
    stack_env = stack_environment(emulator, tmp_path / "stack-state")
    with start_llama_stack(
        service_config(stack_dir, emulator), stack_env | _otel_env(receiver, backend)
    ) as stack:
        path = service_config(tmp_path, emulator, mode="service", llama_stack_url=stack.url)
        env = stack_env | _otel_env(receiver, "llama-entra")
        with start_service(path, env) as service:
            request_id = _query(service.url, "across the hop")

            def joined(spans: list[ReceivedSpan]) -> bool:
                # Each process exports in its own batches: wait for the server's side of the
                # chat call itself, not just any server span of the trace (models, ...).
                root = [
                    s for s in spans if s.attributes.get("llama_entra.request_id") == request_id
                ]
                if not root:
                    return False
                trace = [s for s in spans if s.trace_id == root[0].trace_id]
                chats = [s.span_id for s in trace if s.name == "llama_stack.chat_completions"]
                chat_clients = {
                    s.span_id for s in trace if s.kind == CLIENT and s.parent_id in chats
                }
                return any(
                    s.service == backend and s.kind == SERVER and s.parent_id in chat_clients
                    for s in trace
                )

            receiver.wait_for(joined, deadline_seconds=30)
            spans = _trace_of(receiver, request_id, "llama_stack.chat_completions")
    call = _one(spans, "llama_stack.chat_completions")
    assert call.attributes["llama_stack.mode"] == "service"
    # llama-entra's httpx client span carries traceparent; the server's span continues it.
    # Every Llama Stack call of the request (models, conversations, the chat) is one.
    clients = {s.span_id for s in spans if s.kind == CLIENT and s.service == "llama-entra"}
    server_spans = [s for s in spans if s.service == backend and s.kind == SERVER]
    assert server_spans
    assert {s.parent_id for s in server_spans} <= clients
    (chat,) = [s for s in _children(spans, call) if s.kind == CLIENT]
    assert len([s for s in server_spans if s.parent_id == chat.span_id]) == 1
    # ...and the server's own call to Azure OpenAI is in the same trace, under its server span.
    server_ids = {s.span_id for s in spans if s.service == backend}
    azure = [s for s in spans if s.service == backend and s.kind == CLIENT]
    assert azure and all(s.parent_id in server_ids for s in azure)


def test_tracing_no_secret_token_or_key_in_any_span(
    traced_service: ServiceHandle, receiver: OtlpReceiver, emulator: EmulatorHandle
) -> None:
    _query(traced_service.url, "search me")
    spans = receiver.wait_for(lambda spans: len(spans) > 10)
    tokens = {
        headers["authorization"].removeprefix("Bearer ")
        for headers in emulator.last_request_headers()
        if headers.get("authorization", "").startswith("Bearer ")
    }
    assert tokens, "the emulator recorded no Azure request with a token"
    secrets = {emulator.client_secret, emulator.static_api_key, *tokens}
    for span in spans:
        text = span.text()
        for secret in secrets:
            assert secret not in text, f"a secret in span {span.service}/{span.name}"


def test_tracing_sdk_disabled_exports_nothing(
    emulator: EmulatorHandle,
    receiver: OtlpReceiver,
    traced_service: ServiceHandle,
    tmp_path: Path,
) -> None:
    path = service_config(tmp_path, emulator)
    env = stack_environment(emulator, tmp_path / "state") | _otel_env(receiver, "disabled")
    env["OTEL_SDK_DISABLED"] = "true"
    with start_service(path, env) as disabled:
        _query(disabled.url, "not traced")
        # A traced query after it: once its spans are in, the disabled one's would be too.
        _trace_of(receiver, _query(traced_service.url, "traced"), "POST /v1/query")
        assert "tracing on" not in disabled.logs()
    assert not [s for s in receiver.snapshot() if s.service == "disabled"]
    assert "tracing on: OTLP http/protobuf" in traced_service.logs()

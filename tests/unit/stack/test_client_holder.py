"""Unit tests of the client holder with a fake Llama Stack client and a fake Entra ID."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from llama_entra.backends import ListedModel, ListedProvider
from llama_entra.config import LlamaEntraConfig
from llama_entra.errors import (
    DatabaseUnavailableError,
    NotFoundError,
    UpstreamAuthError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamUnavailableError,
)
from llama_entra.stack import ClientHolder
from support.entra import FakeClock, FakeEntra, fake_manager

HEADER = "X-Test-Provider-Data"
AZURE_BASE = "https://resource.openai.azure.com/openai/v1"


def _azure_401() -> UpstreamError:
    return UpstreamError("expired", status=401)  # as a backend translates Azure's 401


class FakeStackClient:
    """Just what the holder calls: providers and models (operations are given per test)."""

    def __init__(self) -> None:
        self.error_hook = None
        self.provider_lists = 0
        self.providers_unreachable = False

    async def list_providers(self) -> list[ListedProvider]:
        if self.providers_unreachable:
            raise UpstreamConnectionError("Llama Stack is unreachable")
        self.provider_lists += 1
        return [
            ListedProvider("azure", "remote::azure", {"base_url": AZURE_BASE}),
            ListedProvider("local", "remote::vllm", {}),
        ]

    async def list_models(self) -> list[ListedModel]:
        return [
            ListedModel("azure/gpt-4o-mini", "azure", "gpt-4o-mini", "llm"),
            ListedModel("local/llama", "local", "llama", "llm"),
        ]


def _holder(entra: FakeEntra | None, **llama_stack: Any) -> ClientHolder:
    llama_stack.setdefault("provider_data_header", HEADER)
    config = LlamaEntraConfig.model_validate({"llama_stack": llama_stack})
    tokens = fake_manager(entra) if entra is not None else None
    return ClientHolder(config, FakeStackClient(), tokens, mode="library")  # type: ignore[arg-type]


@pytest.fixture
def entra() -> FakeEntra:
    return FakeEntra(clock=FakeClock())


async def test_holder_azure_model_headers_carry_token_base_and_static_data(
    entra: FakeEntra,
) -> None:
    holder = _holder(entra, provider_data={"mcp_headers": {"x": "y"}})
    model = await holder.resolve_model("gpt-4o-mini")
    headers = await holder.headers_for(model)
    assert json.loads(headers[HEADER]) == {
        "mcp_headers": {"x": "y"},
        "azure_api_key": "token-1",
        "azure_api_base": AZURE_BASE,
    }
    assert list(headers) == [HEADER]  # one provider-data header, never two


async def test_holder_non_azure_model_gets_no_token(entra: FakeEntra) -> None:
    holder = _holder(entra)
    model = await holder.resolve_model("llama", provider="local")
    assert await holder.headers_for(model) == {}
    assert entra.requests == 0


async def test_holder_api_base_override_wins_over_discovery(entra: FakeEntra) -> None:
    config = LlamaEntraConfig.model_validate(
        {
            "llama_stack": {"provider_data_header": HEADER},
            "azure_entra_id": {
                "tenant_id": "t",
                "client_id": "c",
                "client_secret": "s",
                "api_base": "https://override.example/openai/v1",
            },
        }
    )
    holder = ClientHolder(config, FakeStackClient(), fake_manager(entra), mode="library")  # type: ignore[arg-type]
    model = await holder.resolve_model("azure/gpt-4o-mini")
    data = json.loads((await holder.headers_for(model))[HEADER])
    assert data["azure_api_base"] == "https://override.example/openai/v1"


async def test_holder_unknown_model_is_not_found_after_one_relisting(entra: FakeEntra) -> None:
    holder = _holder(entra)
    with pytest.raises(NotFoundError, match="nope"):
        await holder.resolve_model("nope")


async def test_holder_default_model_is_used_when_request_names_none(entra: FakeEntra) -> None:
    holder = _holder(entra, default_model="local/llama")
    assert (await holder.resolve_model(None)).id == "local/llama"


async def test_holder_azure_401_invalidates_and_retries_once_with_new_token(
    entra: FakeEntra,
) -> None:
    holder = _holder(entra)
    model = await holder.resolve_model("gpt-4o-mini")
    seen: list[str] = []

    async def operation(headers: dict[str, str], model_id: str) -> str:
        seen.append(json.loads(headers[HEADER])["azure_api_key"])
        if len(seen) == 1:
            raise _azure_401()
        return "answer"

    assert await holder.call(model, operation) == "answer"
    assert seen == ["token-1", "token-2"]


async def test_holder_second_401_is_upstream_auth_error(entra: FakeEntra) -> None:
    holder = _holder(entra)
    model = await holder.resolve_model("gpt-4o-mini")
    calls = 0

    async def operation(headers: dict[str, str], model_id: str) -> str:
        nonlocal calls
        calls += 1
        raise _azure_401()

    with pytest.raises(UpstreamAuthError, match="freshly issued"):
        await holder.call(model, operation)
    assert calls == 2


async def test_holder_stream_retries_before_first_chunk_only(entra: FakeEntra) -> None:
    holder = _holder(entra)
    model = await holder.resolve_model("gpt-4o-mini")
    attempts = 0

    async def chunks() -> AsyncIterator[str]:
        yield "a"
        yield "b"

    async def operation(headers: dict[str, str], model_id: str) -> AsyncIterator[str]:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise _azure_401()
        return chunks()

    assert [chunk async for chunk in holder.stream(model, operation)] == ["a", "b"]
    assert attempts == 2


async def test_holder_connection_error_is_not_retried_outside_streams(entra: FakeEntra) -> None:
    holder = _holder(entra)
    model = await holder.resolve_model("gpt-4o-mini")
    calls = 0

    async def operation(headers: dict[str, str], model_id: str) -> str:
        nonlocal calls
        calls += 1
        raise UpstreamConnectionError("Llama Stack is unreachable")

    with pytest.raises(UpstreamUnavailableError):
        await holder.call(model, operation)
    assert (calls, entra.requests) == (1, 1)


async def test_holder_dropped_service_stream_counts_as_refusal(entra: FakeEntra) -> None:
    config = LlamaEntraConfig.model_validate(
        {"llama_stack": {"mode": "service", "provider_data_header": HEADER}}
    )
    holder = ClientHolder(config, FakeStackClient(), fake_manager(entra), mode="service")  # type: ignore[arg-type]
    model = await holder.resolve_model("gpt-4o-mini")
    attempts = 0

    async def chunks() -> AsyncIterator[str]:
        yield "a"

    async def operation(headers: dict[str, str], model_id: str) -> AsyncIterator[str]:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise UpstreamConnectionError("dropped")
        return chunks()

    assert [chunk async for chunk in holder.stream(model, operation)] == ["a"]
    assert (attempts, holder.unauthorized_retries) == (2, 1)


async def test_holder_configured_header_overrides_the_backends(entra: FakeEntra) -> None:
    holder = _holder(entra, provider_data_header="X-Custom-Data")
    model = await holder.resolve_model("gpt-4o-mini")
    assert list(await holder.headers_for(model)) == ["X-Custom-Data"]


async def test_holder_without_entra_sends_no_azure_keys() -> None:
    holder = _holder(None)
    model = await holder.resolve_model("gpt-4o-mini")
    assert await holder.headers_for(model) == {}


async def test_holder_discovery_failure_is_retried_on_next_use(entra: FakeEntra) -> None:
    holder = _holder(entra)
    client: Any = holder.client
    client.providers_unreachable = True
    with pytest.raises(UpstreamUnavailableError):
        await holder.azure_bases()
    client.providers_unreachable = False
    assert await holder.azure_bases() == {"azure": AZURE_BASE}
    assert await holder.azure_bases() == {"azure": AZURE_BASE}
    assert client.provider_lists == 1


def test_a_lost_database_restarts_the_stack_in_library_mode_only() -> None:
    lost = DatabaseUnavailableError("PostgreSQL database 'd' at h:5432", "connection refused")
    library = _holder(None)
    assert library.started
    library.database_lost(lost)
    assert not library.started and library.waiting_for is lost
    service = ClientHolder(
        LlamaEntraConfig.model_validate({}),
        FakeStackClient(),  # type: ignore[arg-type]
        None,
        mode="service",
    )
    service.database_lost(lost)
    assert service.started and service.waiting_for is None


async def test_holder_an_overloaded_worker_refuses_a_new_call_before_calling_azure(
    entra: FakeEntra,
) -> None:
    from llama_entra.errors import ServiceOverloadedError
    from llama_entra.stack.admission import BATCH, Admission

    holder = _holder(entra)
    assert holder.admission is not None  # on by default
    admission = Admission(max_lag=0.0, max_wait=0.2)  # every tick counts as lagging
    for _ in range(BATCH):  # the first tick's allowance, used up without yielding to the loop
        await admission.admit()
    holder.admission = admission
    model = await holder.resolve_model("gpt-4o-mini")
    calls = 0

    async def operation(headers: dict[str, str], model_id: str) -> str:
        nonlocal calls
        calls += 1
        return "answer"

    with pytest.raises(ServiceOverloadedError):
        await holder.call(model, operation)
    with pytest.raises(ServiceOverloadedError):
        [chunk async for chunk in holder.stream(model, operation)]  # type: ignore[arg-type]
    assert calls == 0 and admission.refused == 2
    await holder.aclose()


def test_holder_admission_is_off_with_a_zero_lag() -> None:
    config = LlamaEntraConfig.model_validate({"service": {"admission_max_lag_ms": 0}})
    assert ClientHolder(config, None, None, mode="library").admission is None

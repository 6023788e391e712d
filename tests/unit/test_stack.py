"""Unit tests of the client holder with a fake Llama Stack client and a fake Entra ID."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import llama_stack_client
import openai
import pytest

from llama_entra.config import LlamaEntraConfig
from llama_entra.errors import NotFoundError, UpstreamAuthError, UpstreamUnavailableError
from llama_entra.stack import ClientHolder
from support.entra import FakeClock, FakeEntra, fake_manager

HEADER = "X-LlamaStack-Provider-Data"
AZURE_BASE = "https://resource.openai.azure.com/openai/v1"


def _azure_401() -> openai.AuthenticationError:
    request = httpx.Request("POST", AZURE_BASE)
    response = httpx.Response(401, request=request, json={"error": {"message": "expired"}})
    return openai.AuthenticationError("expired", response=response, body=None)


class FakeStackClient:
    """Just what the holder calls: providers, models, and a recorded operation."""

    def __init__(self) -> None:
        self.providers = SimpleNamespace(list=self._providers)
        self.models = SimpleNamespace(list=self._models)
        self.provider_lists = 0

    async def _providers(self) -> list[Any]:
        self.provider_lists += 1
        return [
            SimpleNamespace(
                provider_id="azure", provider_type="remote::azure", config={"base_url": AZURE_BASE}
            ),
            SimpleNamespace(provider_id="local", provider_type="remote::vllm", config={}),
        ]

    async def _models(self) -> list[Any]:
        def model(provider: str, name: str) -> Any:
            metadata = {"provider_id": provider, "provider_resource_id": name, "model_type": "llm"}
            return SimpleNamespace(id=f"{provider}/{name}", custom_metadata=metadata)

        return [model("azure", "gpt-4o-mini"), model("local", "llama")]


def _holder(entra: FakeEntra | None, **llama_stack: Any) -> ClientHolder:
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
            "azure_entra_id": {
                "tenant_id": "t",
                "client_id": "c",
                "client_secret": "s",
                "api_base": "https://override.example/openai/v1",
            }
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

    async def operation(headers: dict[str, str]) -> str:
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

    async def operation(headers: dict[str, str]) -> str:
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

    async def operation(headers: dict[str, str]) -> AsyncIterator[str]:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise _azure_401()
        return chunks()

    assert [chunk async for chunk in holder.stream(model, operation)] == ["a", "b"]
    assert attempts == 2


async def test_holder_connection_error_is_upstream_unavailable(entra: FakeEntra) -> None:
    holder = _holder(entra)
    model = await holder.resolve_model("gpt-4o-mini")

    async def operation(headers: dict[str, str]) -> str:
        raise llama_stack_client.APIConnectionError(request=httpx.Request("GET", "http://x"))

    with pytest.raises(UpstreamUnavailableError):
        await holder.call(model, operation)


async def test_holder_without_entra_sends_no_azure_keys() -> None:
    holder = _holder(None)
    model = await holder.resolve_model("gpt-4o-mini")
    assert await holder.headers_for(model) == {}


async def test_holder_discovery_failure_is_retried_on_next_use(entra: FakeEntra) -> None:
    holder = _holder(entra)
    client: Any = holder.client
    working = client.providers.list
    failures = 0

    async def unreachable() -> list[Any]:
        nonlocal failures
        failures += 1
        raise llama_stack_client.APIConnectionError(request=httpx.Request("GET", "http://x"))

    client.providers = SimpleNamespace(list=unreachable)
    with pytest.raises(UpstreamUnavailableError):
        await holder.azure_bases()
    client.providers = SimpleNamespace(list=working)
    assert await holder.azure_bases() == {"azure": AZURE_BASE}
    assert await holder.azure_bases() == {"azure": AZURE_BASE}
    assert (failures, client.provider_lists) == (1, 1)

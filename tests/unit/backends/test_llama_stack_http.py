"""``share_http_clients`` on llama-stack 0.7.3's real ``remote::azure`` adapter.

Every call's ``AsyncOpenAI`` gets one of the provider's few pooled HTTP clients (so connections
and the TLS set-up are reused) instead of a new one per call, with the provider's own network
settings (its CA bundle) applied once; the key stays per call; ``aclose`` closes the pools.
The ``AsyncOpenAI`` clients are kept per key, base URL and pool, and a call never gets a client
made for another key or base URL.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import trustme
import uvicorn
from pydantic import SecretStr

from llama_entra.backends.llama_stack_http import (
    KEEPALIVE_SECONDS,
    MAX_CLIENTS,
    POOLS,
    OpenAIClients,
    share_http_clients,
)


def _router(adapter: Any) -> Any:
    table = type("Table", (), {"impls_by_provider_id": {"azure": adapter}})()
    return type("Router", (), {"routing_table": table})()


async def test_share_http_clients_reuses_a_few_pools_across_calls(azure_adapter: Any) -> None:
    adapter = azure_adapter
    router = _router(adapter)
    shared = share_http_clients(router)
    assert len(shared.clients) == POOLS
    assert adapter.config.network is None
    used = {id(adapter.client._client) for _ in range(3 * POOLS)}
    assert used == {id(client) for client in shared.clients}
    assert adapter.client.api_key == "static-key-for-the-test"
    # An idle connection is dropped before a server on uvicorn's defaults (the emulator) closes
    # it: a call sent as the server closes has an unknown outcome and cannot be sent again.
    pool = shared.clients[0]._transport._pool  # type: ignore[attr-defined]
    assert pool._keepalive_expiry == KEEPALIVE_SECONDS < uvicorn.Config(app=None).timeout_keep_alive
    await shared.aclose()
    assert shared.clients == []


async def test_share_http_clients_without_adapters_shares_nothing() -> None:
    shared = share_http_clients(object())
    assert shared.clients == []


async def test_share_http_clients_leaves_the_azure_entra_provider_its_own_client(
    tmp_path: Path,
) -> None:
    """remote::azure-entra builds its token-carrying client from its own ``network``."""
    from llama_entra.backends.llama_stack_provider import AzureEntraAdapter, AzureEntraConfig

    ca = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca))
    config = AzureEntraConfig(
        base_url="https://resource.example/openai/v1", network={"tls": {"verify": str(ca)}}
    )
    adapter = AzureEntraAdapter(config=config)
    table = type("Table", (), {"impls_by_provider_id": {"azure": adapter}})()
    shared = share_http_clients(type("Router", (), {"routing_table": table})())
    assert shared.clients == []
    assert adapter.config.network is not None
    assert adapter.config.network.tls.verify == ca


async def test_the_real_mixin_maps_a_provider_id_asking_the_store_once(azure_adapter: Any) -> None:
    """0.7.3's mixin asks ``has_model`` per call; wrapped, a miss reaches the store once."""
    from llama_entra.backends.model_lookups import remember_missing_models

    adapter = azure_adapter
    router = _router(adapter)
    asked: list[str] = []

    class Table:
        async def has_model(self, model_id: str) -> bool:
            asked.append(model_id)
            return False

    adapter.model_store = Table()
    assert remember_missing_models(router) == 1
    ids = [await adapter._get_provider_model_id("gpt-4o-mini") for _ in range(5)]
    assert ids == ["gpt-4o-mini"] * 5
    assert asked == ["gpt-4o-mini"]


def _call_with_key(adapter: Any, key: str | None) -> None:
    """The next call's provider data carries ``key`` (as a request's would)."""
    data = None if key is None else SimpleNamespace(azure_api_key=SecretStr(key))
    object.__setattr__(adapter, "get_request_provider_data", lambda: data)


async def test_share_http_clients_keeps_one_openai_client_per_key_and_pool(
    azure_adapter: Any,
) -> None:
    adapter = azure_adapter
    router = _router(adapter)
    shared = share_http_clients(router)
    _call_with_key(adapter, "token-a")
    first = [adapter.client for _ in range(POOLS)]
    again = [adapter.client for _ in range(POOLS)]
    assert [id(client) for client in again] == [id(client) for client in first]
    assert {client.api_key for client in first} == {"token-a"}
    _call_with_key(adapter, "token-b")
    other = [adapter.client for _ in range(POOLS)]
    assert {client.api_key for client in other} == {"token-b"}
    assert not {id(client) for client in other} & {id(client) for client in first}
    await shared.aclose()


async def test_share_http_clients_without_a_key_keeps_the_libraries_error(
    azure_adapter: Any,
) -> None:
    adapter = azure_adapter
    router = _router(adapter)
    object.__setattr__(adapter, "get_api_key", lambda: None)
    shared = share_http_clients(router)
    _call_with_key(adapter, None)
    with pytest.raises(ValueError, match="API key not provided"):
        _ = adapter.client
    await shared.aclose()


def test_openai_clients_never_serve_another_key_or_base_url() -> None:
    pools = [httpx.AsyncClient(), httpx.AsyncClient()]
    clients = OpenAIClients(dict, pools)
    calls = [
        ("key-1", "https://one.example/v1"),
        ("key-2", "https://one.example/v1"),
        ("key-1", "https://two.example/v1"),
    ] * 3
    for key, url in calls:
        client = clients.get(key, url)
        assert client.api_key == key
        assert str(client.base_url) == f"{url}/"
    assert len(clients) == 3 * len(pools)  # one per key, URL and pool, then reused


def test_openai_clients_keep_the_most_recent_few() -> None:
    clients = OpenAIClients(lambda: {"max_retries": 0}, [httpx.AsyncClient()])
    kept = clients.get("key-kept", "https://one.example/v1")
    for n in range(MAX_CLIENTS + 10):
        clients.get(f"key-{n}", "https://one.example/v1")
        assert clients.get("key-kept", "https://one.example/v1") is kept  # used, so kept
    assert len(clients) == MAX_CLIENTS
    assert kept.max_retries == 0  # the adapter's own parameters
    assert clients.get("key-0", "https://one.example/v1").api_key == "key-0"  # made again

"""``share_http_clients`` on llama-stack 0.7.3's real ``remote::azure`` adapter.

Every call's ``AsyncOpenAI`` gets one of the provider's few pooled HTTP clients (so connections
and the TLS set-up are reused) instead of a new one per call, with the provider's own network
settings (its CA bundle) applied once; the key stays per call; ``aclose`` closes the pools.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trustme
import uvicorn

from llama_entra.backends.llama_stack_http import KEEPALIVE_SECONDS, POOLS, share_http_clients


def _router(tmp_path: Path) -> tuple[Any, Any]:
    from llama_stack.providers.remote.inference.azure.azure import AzureInferenceAdapter
    from llama_stack.providers.remote.inference.azure.config import AzureConfig

    ca = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca))
    config = AzureConfig(
        base_url="https://resource.example/openai/v1",
        api_key="static-key-for-the-test",
        network={"tls": {"verify": str(ca)}},
    )
    adapter = AzureInferenceAdapter(config=config)
    object.__setattr__(adapter, "get_request_provider_data", lambda: None)  # no request here
    table = type("Table", (), {"impls_by_provider_id": {"azure": adapter}})()
    return type("Router", (), {"routing_table": table})(), adapter


async def test_share_http_clients_reuses_a_few_pools_across_calls(tmp_path: Path) -> None:
    router, adapter = _router(tmp_path)
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


async def test_the_real_mixin_maps_a_provider_id_asking_the_store_once(tmp_path: Path) -> None:
    """0.7.3's mixin asks ``has_model`` per call; wrapped, a miss reaches the store once."""
    from llama_entra.backends.model_lookups import remember_missing_models

    router, adapter = _router(tmp_path)
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

"""``share_http_clients`` on llama-stack 0.7.3's real ``remote::azure`` adapter.

Every call's ``AsyncOpenAI`` gets one of the provider's few pooled HTTP clients (so connections
and the TLS set-up are reused) instead of a new one per call, with the provider's own network
settings (its CA bundle) applied once; the key stays per call; ``aclose`` closes the pools.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trustme

from llama_entra.backends.llama_stack_http import POOLS, share_http_clients


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

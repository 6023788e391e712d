"""Unit tests of identity keys and the one-manager-per-identity registry."""

from __future__ import annotations

from typing import Any

import pytest

from llama_entra.config import AzureEntraIdConfig
from llama_entra.entra import TokenManagerRegistry, identity_key
from llama_entra.errors import TokenUnavailableError

BASE: dict[str, Any] = {"tenant_id": "t", "client_id": "c", "client_secret": "s1"}


def _config(**changes: Any) -> AzureEntraIdConfig:
    return AzureEntraIdConfig.model_validate({**BASE, **changes})


async def test_registry_same_identity_shares_one_manager() -> None:
    registry = TokenManagerRegistry()
    first = registry.get(_config())
    # Margin, timeout and a rotated secret do not make another identity.
    second = registry.get(_config(refresh_margin_seconds=60, timeout_seconds=3, client_secret="s2"))
    assert first is second
    assert registry.managers() == [first]
    await registry.aclose()
    assert registry.managers() == []


@pytest.mark.parametrize(
    "changes",
    [
        {"tenant_id": "t2"},
        {"client_id": "c2"},
        {"authority_host": "https://login.microsoftonline.us"},
        {"scope": "api://other/.default"},
        {"credential": "certificate", "certificate_path": "/c.pem"},
    ],
)
async def test_registry_different_identities_never_share_a_manager(
    changes: dict[str, Any],
) -> None:
    registry = TokenManagerRegistry()
    assert registry.get(_config()) is not registry.get(_config(**changes))
    assert identity_key(_config()) != identity_key(_config(**changes))
    await registry.aclose()


def test_identity_key_applies_env_precedence_and_holds_no_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AZURE_TENANT_ID", "env-t")
    monkeypatch.setenv("AZURE_CLIENT_ID", "env-c")
    monkeypatch.delenv("AZURE_AUTHORITY_HOST", raising=False)
    config = AzureEntraIdConfig(credential="workload_identity", federated_token_file="/f")
    assert identity_key(config) == (
        "env-t",
        "env-c",
        "workload_identity",
        "https://login.microsoftonline.com",
        "https://cognitiveservices.azure.com/.default",
    )
    assert identity_key(config, {"AZURE_TENANT_ID": "other"}).tenant_id == "other"
    assert "s1" not in repr(identity_key(_config()))


async def test_registry_aclose_closes_every_manager() -> None:
    registry = TokenManagerRegistry()
    managers = [registry.get(_config(client_id=f"c{n}")) for n in range(3)]
    await registry.aclose()
    for manager in managers:
        with pytest.raises(TokenUnavailableError, match="closed"):
            await manager.token()

"""One token manager per identity: configs naming the same identity share one manager.

The identity is (tenant, client, credential kind, authority, scope) after environment
variables are applied, so two identities never share a token, and two parts of the app that
name the same identity (the service and the sidecar proxy, say) share one token and one fetch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import NamedTuple

from llama_entra.config import AzureEntraIdConfig
from llama_entra.entra.credentials import resolve_identity
from llama_entra.entra.manager import TokenManager, create_token_manager

__all__ = ["IdentityKey", "TokenManagerRegistry", "identity_key"]


class IdentityKey(NamedTuple):
    """What makes two configs the same identity (no secrets in it)."""

    tenant_id: str | None
    client_id: str | None
    kind: str
    authority: str
    scope: str


def identity_key(
    config: AzureEntraIdConfig, environ: Mapping[str, str] | None = None
) -> IdentityKey:
    """The identity ``config`` names, with the documented env-var precedence applied."""
    resolved = resolve_identity(config, environ)
    return IdentityKey(
        tenant_id=resolved.tenant_id,
        client_id=resolved.client_id,
        kind=resolved.kind,
        authority=resolved.authority.lower(),
        scope=resolved.scope,
    )


class TokenManagerRegistry:
    """Creates managers on demand, one per identity, and closes them all together."""

    def __init__(
        self, factory: Callable[[AzureEntraIdConfig], TokenManager] = create_token_manager
    ) -> None:
        self._factory = factory
        self._managers: dict[IdentityKey, TokenManager] = {}

    def get(self, config: AzureEntraIdConfig) -> TokenManager:
        """The manager for ``config``'s identity, created (not started) on first use."""
        key = identity_key(config)
        manager = self._managers.get(key)
        if manager is None:
            manager = self._managers[key] = self._factory(config)
        return manager

    def managers(self) -> list[TokenManager]:
        """Every manager created so far."""
        return list(self._managers.values())

    async def aclose(self) -> None:
        """Close every manager; the registry is empty afterwards."""
        managers, self._managers = list(self._managers.values()), {}
        await asyncio.gather(*(manager.aclose() for manager in managers))

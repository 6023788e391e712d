"""``remote::azure-entra`` on OGX 1.5: its spec, config class and adapter class.

Everything here is OGX's own ``remote::azure`` (config, OpenAI-mixin adapter, network
settings) with llama-entra's Entra ID parts mixed in from ``llama_entra.provider``; the HTTP
library of OGX's OpenAI SDK is ``httpx2``.
"""

from __future__ import annotations

from typing import Any

import httpx2
from ogx.providers.remote.inference.azure.azure import AzureInferenceAdapter
from ogx.providers.remote.inference.azure.config import AzureConfig
from ogx.providers.utils.inference.http_client import build_network_client_kwargs
from ogx_api import Api, RemoteProviderSpec
from openai import DefaultAsyncHttpxClient
from pydantic import ConfigDict

from llama_entra.entra import TokenManager
from llama_entra.provider.adapter import EntraAdapterMixin
from llama_entra.provider.auth import EntraAuthFlow
from llama_entra.provider.config import EntraIdentitySettings
from llama_entra.provider.spec import SPEC_FIELDS

__all__ = ["AzureEntraAdapter", "AzureEntraConfig", "OgxProviderKit"]


class AzureEntraConfig(EntraIdentitySettings, AzureConfig):  # type: ignore[misc]
    """``remote::azure``'s settings plus ``azure_entra_id``; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class EntraAuth(EntraAuthFlow[httpx2.Request, httpx2.Response], httpx2.Auth):
    """The Entra ID auth flow as an ``httpx2.Auth``."""


class AzureEntraAdapter(EntraAdapterMixin, AzureInferenceAdapter):  # type: ignore[misc]
    """OGX's Azure adapter with Entra ID tokens (see ``llama_entra.provider``)."""

    config: AzureEntraConfig
    provider_data_api_key_field: str | None = None

    def entra_http_client(self, tokens: TokenManager) -> Any:
        """One pooled ``httpx2`` client: the provider's network settings, the Entra auth flow."""
        network = build_network_client_kwargs(self.config.network)
        return DefaultAsyncHttpxClient(auth=EntraAuth(tokens), **network)


class OgxProviderKit:
    """What ``llama_entra.provider`` needs from OGX."""

    def provider_spec(self) -> Any:
        """The ``RemoteProviderSpec`` of ``remote::azure-entra``."""
        return RemoteProviderSpec(
            api=Api.inference,
            config_class=f"{__name__}.AzureEntraConfig",
            **SPEC_FIELDS,
        )

    def create_adapter(self, config: Any) -> Any:
        """A new (not yet initialized) adapter for ``config``."""
        return AzureEntraAdapter(config=config)

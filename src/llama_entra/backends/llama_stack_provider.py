"""``remote::azure-entra`` on llama-stack 0.7.3: its spec, config class and adapter class.

Everything here is llama-stack's own ``remote::azure`` (config, OpenAI-mixin adapter, network
settings) with llama-entra's Entra ID parts mixed in from ``llama_entra.provider``; the HTTP
library of llama-stack's OpenAI SDK is ``httpx``.
"""

from __future__ import annotations

from typing import Any

import httpx
from llama_stack.providers.remote.inference.azure.azure import AzureInferenceAdapter
from llama_stack.providers.remote.inference.azure.config import AzureConfig
from llama_stack.providers.utils.inference.http_client import _build_network_client_kwargs
from llama_stack_api import Api, RemoteProviderSpec
from pydantic import ConfigDict

from llama_entra.entra import TokenManager
from llama_entra.provider.adapter import EntraAdapterMixin
from llama_entra.provider.auth import EntraAuthFlow
from llama_entra.provider.config import EntraIdentitySettings
from llama_entra.provider.spec import SPEC_FIELDS

__all__ = ["AzureEntraAdapter", "AzureEntraConfig", "LlamaStackProviderKit"]


class AzureEntraConfig(EntraIdentitySettings, AzureConfig):  # type: ignore[misc]
    """``remote::azure``'s settings plus ``azure_entra_id``; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class EntraAuth(EntraAuthFlow[httpx.Request, httpx.Response], httpx.Auth):
    """The Entra ID auth flow as an ``httpx.Auth``."""


class AzureEntraAdapter(EntraAdapterMixin, AzureInferenceAdapter):  # type: ignore[misc]
    """llama-stack's Azure adapter with Entra ID tokens (see ``llama_entra.provider``)."""

    config: AzureEntraConfig
    provider_data_api_key_field: str | None = None

    def entra_http_client(self, tokens: TokenManager) -> Any:
        """One pooled ``httpx`` client: the provider's network settings, the Entra auth flow."""
        network = _build_network_client_kwargs(self.config.network)
        # A legacy httpx client (the OpenAI SDK takes httpx and httpx2 ones): llama-stack's
        # network settings are httpx objects.
        return httpx.AsyncClient(auth=EntraAuth(tokens), **network)


class LlamaStackProviderKit:
    """What ``llama_entra.provider`` needs from llama-stack."""

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

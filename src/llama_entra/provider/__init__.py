"""``remote::azure-entra``: a Llama Stack inference provider that gets its own Entra ID tokens.

Llama Stack loads it from a run config's provider entry::

    - provider_id: azure
      provider_type: remote::azure-entra
      module: llama_entra
      config:
        base_url: ${env.AZURE_API_BASE}
        azure_entra_id: {}        # every key also from AZURE_TENANT_ID, AZURE_CLIENT_ID, ...

``module: llama_entra`` makes Llama Stack import this package and call ``get_provider_spec()``;
the spec points back here for ``get_adapter_impl``. What differs between llama-stack 0.7.3 and
OGX (class names, import paths, the HTTP library) is in ``llama_entra.backends``; the Entra ID
logic (config, token per request, errors) is in this package: ``config``, ``auth``, ``adapter``.
"""

from __future__ import annotations

from typing import Any

from llama_entra.backends import active_backend
from llama_entra.provider.spec import PROVIDER_TYPE

__all__ = ["PROVIDER_TYPE", "get_adapter_impl", "get_provider_spec"]


def get_provider_spec() -> Any:
    """The installed backend's ``RemoteProviderSpec`` for ``remote::azure-entra``."""
    return active_backend().inference_provider().provider_spec()


async def get_adapter_impl(config: Any, _deps: Any) -> Any:
    """The initialized adapter for ``config`` (makes no Entra call)."""
    adapter = active_backend().inference_provider().create_adapter(config)
    await adapter.initialize()
    return adapter

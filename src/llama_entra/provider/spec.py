"""The backend-neutral fields of the ``remote::azure-entra`` provider spec."""

from __future__ import annotations

from typing import Any

__all__ = ["PROVIDER_TYPE", "SPEC_FIELDS"]

PROVIDER_TYPE = "remote::azure-entra"

SPEC_FIELDS: dict[str, Any] = {
    "provider_type": PROVIDER_TYPE,
    "adapter_type": "azure-entra",
    "module": "llama_entra.provider",
    "pip_packages": ["llama-entra"],
    "description": "Azure OpenAI with Microsoft Entra ID tokens fetched, cached and refreshed by "
    "the provider itself (llama-entra): no API key and no provider data needed.",
}

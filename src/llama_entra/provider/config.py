"""The identity part of the ``remote::azure-entra`` provider config, and where its values come from.

The provider config is ``remote::azure``'s (``base_url``, ``network``, ``allowed_models``, ...)
plus ``azure_entra_id``: the same section, with the same keys, as the service's (see
``llama_entra.config.AzureEntraIdConfig``). Every key left out (or empty) is taken from the
standard azure-identity variable, so a run config needs no identity at all:

=========================  ===================================
key                        variable
=========================  ===================================
tenant_id                  AZURE_TENANT_ID
client_id                  AZURE_CLIENT_ID
client_secret              AZURE_CLIENT_SECRET
certificate_path           AZURE_CLIENT_CERTIFICATE_PATH
certificate_password       AZURE_CLIENT_CERTIFICATE_PASSWORD
send_certificate_chain     AZURE_CLIENT_SEND_CERTIFICATE_CHAIN
federated_token_file       AZURE_FEDERATED_TOKEN_FILE
authority_host             AZURE_AUTHORITY_HOST
=========================  ===================================

``endpoints`` (``{strategy, base_urls}``, as the service's ``azure_entra_id.endpoints`` per
provider) lists further Azure OpenAI resources with the same deployments: the adapter picks one
per call and moves a call on 429, 503 or a refused connection (``llama_entra.azure``).

``credential`` left out is inferred the way azure-identity's ``EnvironmentCredential`` and
``DefaultAzureCredential`` would: a client secret -> ``client_secret``, a certificate ->
``certificate``, a federated token file -> ``workload_identity``, else ``default``.

The backends' config classes (``llama_entra.backends.*_provider``) mix ``EntraIdentitySettings``
into their ``remote::azure`` config class.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from llama_entra.config import AzureDeployments, AzureEntraIdConfig

__all__ = ["ENVIRONMENT_KEYS", "EntraIdentitySettings", "identity_from_environment"]

ENVIRONMENT_KEYS: Mapping[str, str] = {
    "tenant_id": "AZURE_TENANT_ID",
    "client_id": "AZURE_CLIENT_ID",
    "client_secret": "AZURE_CLIENT_SECRET",
    "certificate_path": "AZURE_CLIENT_CERTIFICATE_PATH",
    "certificate_password": "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "send_certificate_chain": "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN",
    "federated_token_file": "AZURE_FEDERATED_TOKEN_FILE",
    "authority_host": "AZURE_AUTHORITY_HOST",
}


def _unset(value: object) -> bool:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value is None or value == ""


def identity_from_environment(
    raw: Mapping[str, Any] | None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """``raw`` (the ``azure_entra_id`` mapping) with every unset key filled from the environment."""
    env = os.environ if environ is None else environ
    identity = {key: value for key, value in (raw or {}).items() if not _unset(value)}
    if "api_base" in identity:
        raise ValueError("azure_entra_id.api_base is not used by remote::azure-entra: set base_url")
    if identity.get("endpoints"):
        raise ValueError(
            "azure_entra_id.endpoints is not used by remote::azure-entra: set endpoints "
            "(strategy, base_urls) next to base_url"
        )
    if identity.get("user_identity") == "on_behalf_of":
        raise ValueError(
            "azure_entra_id.user_identity: on_behalf_of is not available in remote::azure-entra "
            "(a Llama Stack server has no signed-in user): set it in llama-entra.yaml"
        )
    for key, variable in ENVIRONMENT_KEYS.items():
        if key not in identity and env.get(variable):
            identity[key] = env[variable]
    authority = identity.get("authority_host")
    if isinstance(authority, str) and "://" not in authority:
        identity["authority_host"] = f"https://{authority}"  # azure-identity: a bare host is https
    if "credential" not in identity:
        identity["credential"] = _inferred_kind(identity)
    return identity


def _inferred_kind(identity: Mapping[str, Any]) -> str:
    if "client_secret" in identity:
        return "client_secret"
    if "certificate_path" in identity:
        return "certificate"
    if "federated_token_file" in identity:
        return "workload_identity"
    return "default"


class EntraIdentitySettings(BaseModel):
    """Mixed into the provider's config class: the identity, and no static key."""

    azure_entra_id: AzureEntraIdConfig = Field(
        default_factory=lambda: AzureEntraIdConfig.model_validate(identity_from_environment({})),
        validate_default=False,
        description="The Entra ID identity (same keys as the service's azure_entra_id); every "
        "key left out comes from its AZURE_* variable (AZURE_TENANT_ID, AZURE_CLIENT_ID, "
        "AZURE_CLIENT_SECRET, AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST, ...).",
    )

    endpoints: AzureDeployments | None = Field(
        None,
        description="Further Azure OpenAI resources with the same deployments ({strategy, "
        "base_urls}; base_url comes first unless listed): failover on 429, 503 and refused "
        "connections.",
    )

    def base_urls(self) -> list[str]:
        """Every resource's base URL in order: ``base_url`` first unless ``endpoints`` lists it."""
        first = str(getattr(self, "base_url", "")).rstrip("/")
        listed = [url.rstrip("/") for url in self.endpoints.base_urls] if self.endpoints else []
        return listed if first in listed else [first, *listed]

    @field_validator("azure_entra_id", mode="before")
    @classmethod
    def _fill_from_environment(cls, value: Any) -> Any:
        if value is None or isinstance(value, Mapping):
            return identity_from_environment(value)
        return value

    @model_validator(mode="after")
    def _no_static_key(self) -> EntraIdentitySettings:
        # remote::azure's api_key (alias of auth_credential) would bypass Entra ID.
        if not _unset(getattr(self, "auth_credential", None)):
            raise ValueError(
                "api_key is not used by remote::azure-entra (it authenticates with Entra ID); "
                "remove it, or use remote::azure for a static key"
            )
        if _unset(getattr(self, "base_url", None)):
            raise ValueError("base_url is required (the Azure OpenAI v1 URL, e.g. AZURE_API_BASE)")
        return self

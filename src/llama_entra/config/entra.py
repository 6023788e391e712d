"""``azure_entra_id``: the identity llama-entra gets Entra ID tokens for."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    SecretStr,
    model_validator,
)

from llama_entra.config.base import StrictModel, blank

__all__ = [
    "COGNITIVE_SERVICES_SCOPE",
    "PUBLIC_AUTHORITY",
    "AzureDeployments",
    "AzureEntraIdConfig",
    "AzureRetryPolicy",
    "CredentialKind",
    "UserIdentity",
]

PUBLIC_AUTHORITY = "https://login.microsoftonline.com"
COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"

CredentialKind = Literal[
    "client_secret", "certificate", "managed_identity", "workload_identity", "default"
]


# Whose identity reaches Azure OpenAI: the service's own, or each signed-in user's (OBO).
UserIdentity = Literal["service", "on_behalf_of"]
_OBO_CREDENTIALS = ("client_secret", "certificate", "workload_identity")


class AzureRetryPolicy(StrictModel):
    """How long one caller request may wait for Azure OpenAI's 429 (README, "Azure's answers").

    Only 429s are called again, after the wait Azure asked for; a wait that does not fit in
    what is left of ``max_wait_seconds`` goes to the caller at once with Azure's
    ``Retry-After``.
    """

    max_retries: int = Field(
        2, ge=0, le=10, description="More Azure calls after a 429, at most, for one request."
    )
    max_wait_seconds: float = Field(
        10.0, ge=0, description="Seconds slept for Azure's waits, at most, for one request."
    )


class AzureDeployments(StrictModel):
    """Several Azure OpenAI resources serving the same deployments of one provider.

    One Entra token is valid for every Azure OpenAI resource of the tenant; the client holder
    picks a resource per call and sends its base URL in the provider data.
    """

    strategy: Literal["priority", "round_robin"] = Field(
        "priority",
        description="priority: the first resource not cooling down; round_robin: in turn.",
    )
    base_urls: list[str] = Field(
        min_length=1,
        description="Every resource's base URL (https://RES.openai.azure.com/openai/v1), in order.",
    )


class AzureEntraIdConfig(StrictModel):
    """The Entra ID identity whose tokens authenticate Azure OpenAI inference."""

    tenant_id: str | None = Field(None, description="Directory (tenant) id.")
    client_id: str | None = Field(
        None, description="Application (client) id; for managed identity, a user-assigned id."
    )
    credential: CredentialKind = Field(
        "client_secret", description="Which azure-identity credential to use."
    )
    client_secret: SecretStr | None = Field(None, description="Client secret (client_secret).")
    certificate_path: Path | None = Field(
        None, description="PEM or PFX file with the private key (certificate)."
    )
    certificate_password: SecretStr | None = Field(
        None, description="Password of the certificate file, if any."
    )
    send_certificate_chain: bool = Field(
        False, description="Send the x5c chain (subject name/issuer authentication)."
    )
    federated_token_file: Path | None = Field(
        None,
        description="workload_identity: projected token file; default AZURE_FEDERATED_TOKEN_FILE.",
    )
    authority_host: str = Field(
        PUBLIC_AUTHORITY, description="Entra authority: public, sovereign cloud, or the emulator."
    )
    ca_bundle: Path | None = Field(
        None,
        description="CA bundle (PEM) trusted for the authority instead of the system CAs, "
        "e.g. the emulator's ca.pem.",
    )
    scope: str = Field(COGNITIVE_SERVICES_SCOPE, description="Scope of the requested token.")
    refresh_margin_seconds: int = Field(
        300, ge=0, description="Refresh when less than this is left, or at the token's refresh_on."
    )
    timeout_seconds: float = Field(
        10.0, gt=0, description="Longest wait for one token request before it counts as failed."
    )
    api_base: str | None = Field(
        None, description="Azure OpenAI base URL; default: base_url of the remote::azure provider."
    )
    endpoints: dict[str, AzureDeployments] = Field(
        default_factory=dict,
        description="Per remote::azure provider id: further resources with the same "
        "deployments, and how calls spread over them (failover on 429 and refused connections).",
    )
    retries: AzureRetryPolicy = Field(
        default_factory=AzureRetryPolicy, description="Retries of Azure's 429 (rate limit)."
    )

    user_identity: UserIdentity = Field(
        "service",
        description="service: every call reaches Azure as this app; on_behalf_of: as the "
        "signed-in caller, through Entra's on-behalf-of exchange of the caller's token "
        "(needs `jwk` inbound authentication for this app's issuer and audience).",
    )
    app_callers: Literal["service", "refuse"] = Field(
        "refuse",
        description="on_behalf_of: what app-only callers (no user: no `scp` claim, or "
        "`idtyp: app`) get: the service identity, or 403.",
    )
    user_cache_size: int = Field(
        10_000,
        ge=1,
        description="on_behalf_of: users whose Azure token is kept (least recently used "
        "evicted; about 3 KB each).",
    )
    user_exchange_concurrency: int = Field(
        16,
        ge=1,
        description="on_behalf_of: on-behalf-of exchanges in flight with Entra at most "
        "(many new users at once queue instead of flooding Entra).",
    )

    def resource_urls(self) -> dict[str, list[str]]:
        """Each provider's resources' base URLs (``endpoints``), for the enricher."""
        return {provider: list(spread.base_urls) for provider, spread in self.endpoints.items()}

    @model_validator(mode="after")
    def _credential_has_its_fields(self) -> AzureEntraIdConfig:
        required: dict[str, tuple[str, ...]] = {
            "client_secret": ("tenant_id", "client_id", "client_secret"),
            "certificate": ("tenant_id", "client_id", "certificate_path"),
            "workload_identity": (),
            "managed_identity": (),
            "default": (),
        }
        missing = [name for name in required[self.credential] if blank(getattr(self, name))]
        if self.credential == "workload_identity":
            # AKS injects these; config values win over them (see llama_entra.entra.credentials).
            fallbacks = {
                "tenant_id": "AZURE_TENANT_ID",
                "client_id": "AZURE_CLIENT_ID",
                "federated_token_file": "AZURE_FEDERATED_TOKEN_FILE",
            }
            missing = [
                f"{name} (or {env})"
                for name, env in fallbacks.items()
                if blank(getattr(self, name)) and not os.environ.get(env)
            ]
        if missing:
            raise ValueError(
                f"credential {self.credential} needs {', '.join(missing)} (missing or empty)"
            )
        if self.user_identity == "on_behalf_of" and self.credential not in _OBO_CREDENTIALS:
            raise ValueError(
                f"user_identity on_behalf_of needs the app's own client credential "
                f"({', '.join(_OBO_CREDENTIALS)}), not {self.credential}"
            )
        if not self.authority_host.startswith("https://"):
            raise ValueError("authority_host must be an https:// URL")
        return self

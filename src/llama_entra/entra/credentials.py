"""Build the azure-identity credential for an ``azure_entra_id`` config.

One function, ``build_credential``, per identity kind (``credential:`` in the config):

==================  ==========================================  ==================================
kind                azure-identity class                         needs
==================  ==========================================  ==================================
client_secret       ``aio.ClientSecretCredential``               tenant_id, client_id, client_secret
certificate         ``aio.CertificateCredential`` (PEM or PFX)   tenant_id, client_id,
                    sync ``CertificateCredential`` in a worker    certificate_path
                    thread when ``send_certificate_chain``
managed_identity    ``aio.ManagedIdentityCredential``            nothing; client_id = user-assigned
workload_identity   ``aio.WorkloadIdentityCredential``           tenant, client, token file from
                                                                 config or AZURE_* env vars
default             ``aio.DefaultAzureCredential``               whatever its chain finds
==================  ==========================================  ==================================

Precedence: a value in the config wins over the standard environment variable
(``AZURE_TENANT_ID``, ``AZURE_CLIENT_ID``, ``AZURE_FEDERATED_TOKEN_FILE``,
``AZURE_AUTHORITY_HOST``), which wins over the built-in default. ``authority_host`` counts as
"in the config" only when the file sets it.

Every credential trusts ``ca_bundle`` (when set) for the authority, via azure-core's
``connection_verify``. The Entra clients (secret, certificate, workload identity) make exactly
one HTTP request per token request (``retry_total=0``): ``TokenManager`` owns retries and backoff.
Building reads files (certificate), so callers run it in a worker thread.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self
from urllib.parse import urlsplit

from azure.core.credentials import AccessTokenInfo, SupportsTokenInfo, TokenRequestOptions
from azure.identity import AzureAuthorityHosts
from azure.identity import CertificateCredential as SyncCertificateCredential
from azure.identity.aio import (
    CertificateCredential,
    ClientSecretCredential,
    DefaultAzureCredential,
    ManagedIdentityCredential,
    WorkloadIdentityCredential,
)

from llama_entra.config import PUBLIC_AUTHORITY, AzureEntraIdConfig, CredentialKind

__all__ = [
    "ResolvedIdentity",
    "ThreadedCredential",
    "TokenSource",
    "build_credential",
    "resolve_identity",
]

_PUBLIC_CLOUDS = frozenset(
    {
        AzureAuthorityHosts.AZURE_PUBLIC_CLOUD,
        AzureAuthorityHosts.AZURE_CHINA,
        AzureAuthorityHosts.AZURE_GOVERNMENT,
    }
)


class TokenSource(Protocol):
    """What the token manager needs from a credential: azure-identity's token-info call."""

    async def get_token_info(
        self, *scopes: str, options: TokenRequestOptions | None = None
    ) -> AccessTokenInfo:
        """Ask for a token for ``scopes``."""
        ...

    async def close(self) -> None:
        """Release the credential's HTTP session."""
        ...


@dataclass(frozen=True, slots=True)
class ResolvedIdentity:
    """The identity a config names once environment variables are applied (no secrets)."""

    kind: CredentialKind
    tenant_id: str | None
    client_id: str | None
    authority: str
    scope: str
    federated_token_file: Path | None

    @property
    def label(self) -> str:
        """Safe, human-readable name: kind, tenant and client id."""
        client = self.client_id or ("system-assigned" if self.kind == "managed_identity" else "-")
        return f"{self.kind} tenant={self.tenant_id or '-'} client={client}"


def resolve_identity(
    config: AzureEntraIdConfig, environ: Mapping[str, str] | None = None
) -> ResolvedIdentity:
    """Apply the documented precedence (config, then AZURE_* env vars, then defaults)."""
    env = os.environ if environ is None else environ
    tenant_id, client_id = config.tenant_id, config.client_id
    token_file = config.federated_token_file
    if config.credential == "workload_identity":
        tenant_id = tenant_id or env.get("AZURE_TENANT_ID") or None
        client_id = client_id or env.get("AZURE_CLIENT_ID") or None
        if token_file is None and env.get("AZURE_FEDERATED_TOKEN_FILE"):
            token_file = Path(env["AZURE_FEDERATED_TOKEN_FILE"])
    if "authority_host" in config.model_fields_set:
        authority = config.authority_host
    else:
        authority = env.get("AZURE_AUTHORITY_HOST") or config.authority_host or PUBLIC_AUTHORITY
    if "://" not in authority:  # azure-identity's own convention: a bare host means https
        authority = f"https://{authority}"
    return ResolvedIdentity(
        kind=config.credential,
        tenant_id=tenant_id,
        client_id=client_id,
        authority=authority.rstrip("/"),
        scope=config.scope,
        federated_token_file=token_file,
    )


def build_credential(
    config: AzureEntraIdConfig, environ: Mapping[str, str] | None = None
) -> TokenSource:
    """Build a new credential for ``config``; raises ``ValueError``/``OSError`` on bad material.

    Makes no network call. Reads the certificate file, so call it off the event loop.
    """
    identity = resolve_identity(config, environ)
    transport: dict[str, Any] = {}
    if config.ca_bundle is not None:
        transport["connection_verify"] = str(config.ca_bundle)
    entra: dict[str, Any] = {"authority": identity.authority, "retry_total": 0, **transport}

    match identity.kind:
        case "client_secret":
            secret = _required(config.client_secret, "client_secret")
            return ClientSecretCredential(
                _required(identity.tenant_id, "tenant_id"),
                _required(identity.client_id, "client_id"),
                secret.get_secret_value(),
                **entra,
            )
        case "certificate":
            return _certificate_credential(config, identity, entra)
        case "managed_identity":
            return ManagedIdentityCredential(client_id=identity.client_id, **transport)
        case "workload_identity":
            token_file = identity.federated_token_file
            return WorkloadIdentityCredential(
                tenant_id=_required(identity.tenant_id, "tenant_id"),
                client_id=_required(identity.client_id, "client_id"),
                token_file_path=str(_required(token_file, "federated_token_file")),
                **entra,
            )
        case "default":
            chain: dict[str, Any] = {"authority": identity.authority, **transport}
            if identity.client_id:
                chain["managed_identity_client_id"] = identity.client_id
                chain["workload_identity_client_id"] = identity.client_id
            if identity.tenant_id:
                chain["workload_identity_tenant_id"] = identity.tenant_id
            return DefaultAzureCredential(**chain)


def _certificate_credential(
    config: AzureEntraIdConfig, identity: ResolvedIdentity, entra: dict[str, Any]
) -> TokenSource:
    path = str(_required(config.certificate_path, "certificate_path"))
    password = (
        config.certificate_password.get_secret_value() if config.certificate_password else None
    )
    tenant_id = _required(identity.tenant_id, "tenant_id")
    client_id = _required(identity.client_id, "client_id")
    if not config.send_certificate_chain:
        return CertificateCredential(
            tenant_id, client_id, certificate_path=path, password=password, **entra
        )
    # The aio CertificateCredential drops send_certificate_chain (azure-identity 1.27); only the
    # MSAL-based sync class sends the x5c header, so run that one in worker threads.
    host = urlsplit(identity.authority).hostname or ""
    sync = SyncCertificateCredential(
        tenant_id,
        client_id,
        certificate_path=path,
        password=password,
        send_certificate_chain=True,
        disable_instance_discovery=host not in _PUBLIC_CLOUDS,
        **entra,
    )
    return ThreadedCredential(sync)


class _SyncCredential(SupportsTokenInfo, Protocol):
    def close(self) -> None: ...


class ThreadedCredential:
    """Adapts a sync-only azure-identity credential: each call runs in a worker thread."""

    def __init__(self, credential: _SyncCredential) -> None:
        self.credential = credential

    async def get_token_info(
        self, *scopes: str, options: TokenRequestOptions | None = None
    ) -> AccessTokenInfo:
        """Ask the wrapped credential in a worker thread, so the event loop never blocks."""
        return await asyncio.to_thread(self.credential.get_token_info, *scopes, options=options)

    async def close(self) -> None:
        """Close the wrapped credential's session in a worker thread."""
        await asyncio.to_thread(self.credential.close)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        await self.close()


def _required[T](value: T | None, name: str) -> T:
    if value is None:
        raise ValueError(f"{name} is not set")
    return value

"""One on-behalf-of exchange: a user's access token for a token for Azure OpenAI.

azure-identity's ``aio.OnBehalfOfCredential`` makes the request (the jwt-bearer grant with
``requested_token_use=on_behalf_of`` and the app's own client authentication: secret,
certificate or workload identity's federated token). It binds one user assertion per instance
and caches tokens per assertion, and a user's assertion changes whenever they sign in again,
so keeping one instance per user would keep stale assertions; keeping one per request would
keep nothing. Each exchange therefore uses a short-lived instance, and ``UserTokenCache``
keeps the resulting token per user. The instances share one pooled HTTP session (made at the
first exchange, closed by ``aclose``), so exchanges reuse connections to Entra instead of
opening one, TLS handshake included, per user.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from azure.core.credentials import AccessTokenInfo
from azure.core.pipeline.transport import AioHttpTransport
from azure.identity.aio import OnBehalfOfCredential

from llama_entra.config import AzureEntraIdConfig
from llama_entra.entra import resolve_identity
from llama_entra.identity.caller import UserCaller
from llama_entra.identity.errors import translate_exchange_error

__all__ = ["OnBehalfOfExchange"]


class OnBehalfOfExchange:
    """Exchanges a caller's assertion with Entra, as the app ``config`` names."""

    def __init__(self, config: AzureEntraIdConfig) -> None:
        identity = resolve_identity(config)
        if identity.tenant_id is None or identity.client_id is None:
            raise ValueError("on_behalf_of needs the app's tenant_id and client_id")
        self._config = config
        self._tenant_id, self._client_id = identity.tenant_id, identity.client_id
        self._token_file = identity.federated_token_file
        self._options: dict[str, Any] = {"authority": identity.authority, "retry_total": 0}
        self._client_auth: dict[str, Any] | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, caller: UserCaller) -> AccessTokenInfo:
        """A token for ``scope`` carrying ``caller``'s identity; errors name their fix."""
        try:
            credential = OnBehalfOfCredential(
                self._tenant_id,
                self._client_id,
                user_assertion=caller.assertion.get_secret_value(),
                **await self._client_authentication(),
                **self._options,
                transport=AioHttpTransport(session=self._pooled(), session_owner=False),
            )
            async with credential:
                return await asyncio.wait_for(
                    credential.get_token_info(self._config.scope),
                    self._config.timeout_seconds,
                )
        except Exception as exc:
            raise translate_exchange_error(
                exc, scope=self._config.scope, timeout_seconds=self._config.timeout_seconds
            ) from exc

    async def aclose(self) -> None:
        """Close the pooled HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _pooled(self) -> aiohttp.ClientSession:
        if self._session is None:
            verify: ssl.SSLContext | bool = True
            if self._config.ca_bundle is not None:
                verify = ssl.create_default_context(cafile=str(self._config.ca_bundle))
            connector = aiohttp.TCPConnector(
                ssl=verify, limit=self._config.user_exchange_concurrency
            )
            self._session = aiohttp.ClientSession(
                connector=connector, trust_env=True, cookie_jar=aiohttp.DummyCookieJar()
            )
        return self._session

    async def _client_authentication(self) -> dict[str, Any]:
        """The app's own credential as ``OnBehalfOfCredential`` takes it (files read once)."""
        if self._client_auth is None:
            self._client_auth = await asyncio.to_thread(self._read_client_authentication)
        return self._client_auth

    def _read_client_authentication(self) -> dict[str, Any]:
        config = self._config
        match config.credential:
            case "client_secret" if config.client_secret is not None:
                return {"client_secret": config.client_secret.get_secret_value()}
            case "certificate" if config.certificate_path is not None:
                password = config.certificate_password
                return {
                    "client_certificate": config.certificate_path.read_bytes(),
                    "password": password.get_secret_value() if password else None,
                }
            case "workload_identity" if self._token_file is not None:
                return {"client_assertion_func": _file_reader(self._token_file)}
        raise ValueError(f"credential {config.credential} cannot authenticate an exchange")


def _file_reader(path: Path) -> Callable[[], str]:
    """The federated token, read at each exchange: the kubelet rotates the file."""

    def read() -> str:
        return path.read_text(encoding="utf-8").strip()

    return read

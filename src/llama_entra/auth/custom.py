"""``custom``: each decision is delegated to an HTTP endpoint (Llama Stack's protocol).

The caller sends ``Authorization: Bearer <key>``; the service POSTs
``{"api_key": <key>, "request": {"path", "headers" (without Authorization), "params"}}`` to the
endpoint. 200 allows (an optional JSON ``{"principal", "attributes", "roles"}`` names the caller),
any other answer gives 401. An unreachable, slow or failing (5xx) endpoint gives 503: the
service fails closed. Allow decisions are cached for ``cache_ttl_seconds``, keyed by a hash of
the key, through one shared HTTP client.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

import httpx
from starlette.requests import HTTPConnection

from llama_entra.auth.base import Action, Principal
from llama_entra.auth.bearer import bearer_credential
from llama_entra.auth.rules import Rules
from llama_entra.config import CustomAuthConfig
from llama_entra.errors import AuthUnavailableError, UnauthenticatedError

__all__ = ["CustomAuthenticator"]

logger = logging.getLogger(__name__)
_MAX_CACHED = 10_000


class CustomAuthenticator:
    """Asks ``custom.endpoint`` about every caller it has not allowed recently."""

    module = "custom"

    def __init__(
        self,
        config: CustomAuthConfig,
        rules: Rules,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._rules = rules
        self._clock = clock
        self._cache: dict[str, tuple[float, Principal]] = {}
        verify: ssl.SSLContext | bool = True
        if config.ca_bundle is not None:
            verify = ssl.create_default_context(cafile=str(config.ca_bundle))
        self._client = httpx.AsyncClient(
            timeout=config.timeout_seconds, transport=transport, verify=verify
        )

    async def authenticate(self, connection: HTTPConnection) -> Principal:
        """Allowed principal, ``UnauthenticatedError`` (401) or ``AuthUnavailableError`` (503)."""
        key = bearer_credential(connection)
        cache_key = hashlib.sha256(key.encode()).hexdigest()
        cached = self._cache.get(cache_key)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        body = {
            "api_key": key,
            "request": {
                "path": connection.url.path,
                "headers": {
                    k: v for k, v in connection.headers.items() if k.lower() != "authorization"
                },
                "params": dict(connection.query_params),
            },
        }
        try:
            answer = await self._client.post(self._config.endpoint, json=body)
        except httpx.TimeoutException:
            raise AuthUnavailableError(
                "the authentication endpoint did not answer in time"
            ) from None
        except httpx.TransportError:
            raise AuthUnavailableError("the authentication endpoint is unreachable") from None
        if answer.status_code >= 500:
            raise AuthUnavailableError(f"the authentication endpoint failed ({answer.status_code})")
        if answer.status_code != 200:
            raise UnauthenticatedError("the credential was not accepted")
        principal = _principal(answer)
        if self._config.cache_ttl_seconds > 0:
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            self._cache[cache_key] = (self._clock() + self._config.cache_ttl_seconds, principal)
        return principal

    def authorize(self, principal: Principal, action: Action) -> None:
        """Apply the authorization rules."""
        self._rules.check(principal, action)

    async def aclose(self) -> None:
        """Close the shared HTTP client."""
        await self._client.aclose()


def _principal(answer: httpx.Response) -> Principal:
    try:
        data: Any = answer.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return Principal(name="custom")
    attributes = data.get("attributes")
    roles = data.get("roles")
    return Principal(
        name=str(data.get("principal") or "custom"),
        roles=frozenset(str(r) for r in roles) if isinstance(roles, list) else frozenset(),
        attributes={str(k): str(v) for k, v in attributes.items()}
        if isinstance(attributes, dict)
        else {},
    )

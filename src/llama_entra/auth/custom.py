"""``custom``: each decision is delegated to an HTTP endpoint (Llama Stack's protocol).

The caller sends ``Authorization: Bearer <key>``; the service POSTs
``{"api_key": <key>, "request": {"method", "path", "headers" (without Authorization),
"params"}}`` to the endpoint. 200 allows (an optional JSON ``{"principal", "attributes",
"roles"}`` names the caller), any other answer gives 401. An unreachable, slow or failing (5xx)
endpoint gives 503: the service fails closed.

An allow decision is reused only for requests the endpoint would have judged the same way: the
cache key is a hash of the key, the method, the path, every query parameter and the headers
named in ``cache_key_headers``. The endpoint's ``Cache-Control`` is honoured (``no-store`` or
``no-cache``: not cached; ``max-age``: at most that long); ``cache_ttl_seconds`` is the upper
bound. Denials are never cached. One shared HTTP client serves every decision.
"""

from __future__ import annotations

import hashlib
import json
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

__all__ = ["CustomAuthenticator", "cache_seconds"]

logger = logging.getLogger(__name__)
_MAX_CACHED = 10_000


class CustomAuthenticator:
    """Asks ``custom.endpoint`` about every request it has not allowed recently."""

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
        self._vary = tuple(sorted({name.lower() for name in config.cache_key_headers}))
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
        cache_key = self._cache_key(key, connection)
        cached = self._cache.get(cache_key)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        body = {
            "api_key": key,
            "request": {
                "method": connection.scope.get("method", "GET"),
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
        ttl = cache_seconds(answer.headers.get("cache-control"), self._config.cache_ttl_seconds)
        if ttl > 0:
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            self._cache[cache_key] = (self._clock() + ttl, principal)
        return principal

    def authorize(self, principal: Principal, action: Action) -> None:
        """Apply the authorization rules."""
        self._rules.check(principal, action)

    async def aclose(self) -> None:
        """Close the shared HTTP client."""
        await self._client.aclose()

    def _cache_key(self, key: str, connection: HTTPConnection) -> str:
        """A digest of everything the endpoint is sent that may change its answer."""
        headers = connection.headers
        material = [
            key,
            connection.scope.get("method", "GET"),
            connection.url.path,
            sorted(connection.query_params.multi_items()),
            [(name, headers.getlist(name)) for name in self._vary],
        ]
        return hashlib.sha256(json.dumps(material).encode()).hexdigest()


def cache_seconds(cache_control: str | None, ceiling: float) -> float:
    """How long an allow may be reused given the endpoint's ``Cache-Control`` and the ceiling."""
    if not cache_control:
        return ceiling
    directives: dict[str, str] = {}
    for part in cache_control.split(","):
        name, _, value = part.strip().partition("=")
        directives[name.strip().lower()] = value.strip().strip('"')
    if "no-store" in directives or "no-cache" in directives:
        return 0.0
    if "max-age" in directives:
        try:
            return max(0.0, min(ceiling, float(directives["max-age"])))
        except ValueError:
            return 0.0  # a malformed lifetime is no permission to cache
    return ceiling


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

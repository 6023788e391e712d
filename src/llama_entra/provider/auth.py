"""Attach the Entra ID token to each Azure OpenAI request; on 401 refresh once and resend.

``EntraAuthFlow`` is the body of an ``httpx.Auth`` (``httpx2.Auth`` on OGX: the backend module
mixes it into its HTTP library's class). The pooled HTTP client of the provider carries it, so
the OpenAI client is built once and every request, streaming or not, gets the token that is
valid right now. When Azure answers 401 (token revoked or rotated) the flow drops exactly that
token, gets one fresh token (single flight across concurrent requests) and sends the request
again; a second 401 is returned to the caller. A 401 whose code is ``PermissionDenied`` (the
principal has no role on the resource) is returned at once: a fresh token names the same
principal, so no token is dropped and nothing is resent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, Generator, MutableMapping
from typing import Protocol

from pydantic import SecretStr

from llama_entra.entra import TokenManager

__all__ = ["EntraAuthFlow", "RequestLike", "ResponseLike"]

logger = logging.getLogger(__name__)


class RequestLike(Protocol):
    """The part of an httpx(2) request the flow touches."""

    @property
    def headers(self) -> MutableMapping[str, str]:
        """Request headers."""
        ...


class ResponseLike(Protocol):
    """The part of an httpx(2) response the flow reads."""

    @property
    def status_code(self) -> int:
        """HTTP status."""
        ...

    async def aread(self) -> bytes:
        """The whole body (read only for a 401, whose body is small)."""
        ...


class EntraAuthFlow[Req: RequestLike, Resp: ResponseLike]:
    """Bearer token from ``tokens`` on every request, one refresh and resend on Azure 401."""

    requires_request_body = True  # the request may be sent twice
    requires_response_body = False

    def __init__(self, tokens: TokenManager) -> None:
        self.tokens = tokens
        self.unauthorized_retries = 0
        self.permission_denied = 0  # 401 PermissionDenied answers, returned without a retry

    async def async_auth_flow(self, request: Req) -> AsyncGenerator[Req, Resp]:
        """Send ``request`` with the current token; on 401 once more with a fresh one."""
        token = await self.tokens.token()
        _authorize(request, token)
        response = yield request
        if response.status_code != 401:
            return
        if _azure_code(await response.aread()) == "PermissionDenied":
            self.permission_denied += 1
            return
        self.unauthorized_retries += 1
        logger.info("Azure OpenAI rejected the Entra ID token; fetching a new one and resending")
        self.tokens.invalidate(token)
        _authorize(request, await self.tokens.token())
        yield request

    def sync_auth_flow(self, request: Req) -> Generator[Req, Resp, None]:
        """The provider's client is async only."""
        raise RuntimeError("remote::azure-entra uses an async HTTP client only")
        yield request  # pragma: no cover - makes this a generator


def _azure_code(body: bytes) -> str | None:
    """``error.code`` of an Azure error body, if it is one."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    error = document.get("error") if isinstance(document, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


def _authorize(request: RequestLike, token: SecretStr) -> None:
    request.headers["Authorization"] = f"Bearer {token.get_secret_value()}"
    request.headers.pop("api-key", None)

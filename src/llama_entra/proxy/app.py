"""``create_proxy_app(config)``: the sidecar's ASGI app (Starlette, no FastAPI needed).

The lifespan owns one token manager (lazy: no Entra call at start-up) and one pooled
``httpx.AsyncClient`` with connect and read timeouts but no total cap, so a long generation is
never cut. ``/healthz``, ``/readyz`` and ``/metrics`` are reserved; every other path is forwarded.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from llama_entra.auth import Authenticator, build_authenticator, warn_if_exposed
from llama_entra.config import LlamaEntraConfig, ProxyConfig
from llama_entra.entra import TokenManager, create_token_manager
from llama_entra.errors import (
    AuthError,
    ConfigError,
    ForbiddenError,
    LlamaEntraError,
    TokenError,
    UnauthenticatedError,
    UpstreamUnavailableError,
)
from llama_entra.proxy.forward import forward
from llama_entra.proxy.metrics import ProxyMetrics

__all__ = ["create_proxy_app", "upstream_client"]

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def upstream_client(
    config: ProxyConfig, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The pooled client: system CAs (and ``SSL_CERT_FILE``) plus ``ca_bundle``."""
    context = ssl.create_default_context()
    if config.ca_bundle is not None:
        context.load_verify_locations(cafile=str(config.ca_bundle))
    timeout = httpx.Timeout(
        connect=config.connect_timeout_seconds,
        read=config.read_timeout_seconds,
        write=config.read_timeout_seconds,
        pool=config.connect_timeout_seconds,
    )
    return httpx.AsyncClient(
        verify=context,
        timeout=timeout,
        transport=transport,
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        follow_redirects=False,
        trust_env=False,
    )


def create_proxy_app(
    config: LlamaEntraConfig,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    tokens: TokenManager | None = None,
) -> Starlette:
    """The proxy for ``config`` (``proxy.upstream`` and ``azure_entra_id`` are required)."""
    if not config.proxy.upstream:
        raise ConfigError("the proxy needs an upstream Azure OpenAI URL", key="proxy.upstream")
    if config.azure_entra_id is None and tokens is None:
        raise ConfigError("the proxy needs an Entra ID identity", key="azure_entra_id")
    upstream = httpx.URL(config.proxy.upstream)
    metrics = ProxyMetrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            authenticator = build_authenticator(config.authentication)
            stack.push_async_callback(authenticator.aclose)
            warn_if_exposed(config.authentication, config.proxy.host)
            manager = tokens
            if manager is None:
                assert config.azure_entra_id is not None  # noqa: S101 - checked above
                manager = create_token_manager(config.azure_entra_id)
            await manager.start()
            stack.push_async_callback(manager.aclose)
            metrics.attach(manager)
            client = await stack.enter_async_context(upstream_client(config.proxy, transport))
            app.state.tokens, app.state.client = manager, client
            app.state.authenticator = authenticator
            yield

    async def healthz(request: Request) -> Response:
        return JSONResponse({"alive": True})

    async def readyz(request: Request) -> Response:
        manager: TokenManager = request.app.state.tokens
        try:
            await manager.token()
        except TokenError as exc:
            return _error(503, "Entra ID token unavailable", exc.cause)
        status = manager.status()
        return JSONResponse({"ready": True, "expires_in_seconds": status.expires_in_seconds})

    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def proxied(request: Request) -> Response:
        state = request.app.state
        try:
            await _authenticate(request, state.authenticator)
            response = await forward(
                request,
                state.client,
                state.tokens,
                upstream,
                replay_limit_bytes=config.proxy.replay_limit_bytes,
                metrics=metrics,
            )
        except LlamaEntraError as exc:
            response = _answer(exc)
        metrics.requests.labels(str(response.status_code)).inc()
        return response

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
            Route("/{path:path}", proxied, methods=_METHODS),
        ],
        lifespan=lifespan,
    )


async def _authenticate(request: Request, authenticator: Authenticator) -> None:
    if authenticator.module == "noop":
        return
    principal = await authenticator.authenticate(request)
    authenticator.authorize(principal, "chat")


def _error(
    status: int, response: str, cause: str, headers: dict[str, str] | None = None
) -> Response:
    return JSONResponse({"detail": {"response": response, "cause": cause}}, status, headers)


def _answer(exc: LlamaEntraError) -> Response:
    match exc:
        case TokenError():
            return _error(503, "Entra ID token unavailable", exc.cause, {"Retry-After": "5"})
        case UnauthenticatedError():
            return _error(401, "Not authenticated", str(exc), {"WWW-Authenticate": "Bearer"})
        case ForbiddenError():
            return _error(403, "Forbidden", str(exc))
        case AuthError():
            return _error(503, "Authentication unavailable", str(exc))
        case UpstreamUnavailableError():
            return _error(504, "Azure OpenAI timed out", str(exc))
        case _:
            return _error(502, "Azure OpenAI unreachable", str(exc))

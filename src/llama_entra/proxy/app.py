"""``create_proxy_app(config)``: the sidecar's ASGI app.

``/healthz``, ``/readyz`` and ``/metrics`` are reserved and served by Starlette; every other
path goes straight to ``forward`` as plain ASGI, past any routing or response classes, because
the proxy's whole budget is under a millisecond. The lifespan owns one token manager (lazy: no
Entra call at start-up) and one pooled upstream session; with several upstreams
(``proxy.upstreams``), the deployment pool that picks one per request.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import yarl
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from llama_entra.auth import Authenticator, build_authenticator, warn_if_exposed
from llama_entra.auth.bearer import bearer_credential
from llama_entra.azure import DeploymentPool
from llama_entra.config import LlamaEntraConfig
from llama_entra.entra import TokenManager, create_token_manager
from llama_entra.errors import (
    AuthError,
    AzureThrottledError,
    ConfigError,
    ForbiddenError,
    LlamaEntraError,
    TokenError,
    UnauthenticatedError,
    UpstreamError,
    UpstreamUnavailableError,
)
from llama_entra.identity import (
    bind_caller,
    caller_from_claims,
    create_user_tokens,
    register_user_token_metrics,
)
from llama_entra.proxy.forward import ClientGoneError, Upstream, forward
from llama_entra.proxy.metrics import ProxyMetrics
from llama_entra.proxy.upstream import upstream_session

__all__ = ["ProxyApp", "create_proxy_app"]

_RESERVED = frozenset({"/healthz", "/readyz", "/metrics"})
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_CLIENT_CLOSED = 499  # the status nginx logs for a caller that hung up first


class ProxyApp:
    """The proxy: reserved paths to Starlette, everything else forwarded upstream."""

    def __init__(self, config: LlamaEntraConfig, tokens: TokenManager | None = None) -> None:
        if not config.proxy.upstream_urls():
            raise ConfigError("the proxy needs an upstream Azure OpenAI URL", key="proxy.upstream")
        if config.azure_entra_id is None and tokens is None:
            raise ConfigError("the proxy needs an Entra ID identity", key="azure_entra_id")
        self.config = config
        self.metrics = ProxyMetrics()
        self._tokens = tokens
        self._upstream: Upstream | None = None
        self._authenticator: Authenticator | None = None
        self.starlette = Starlette(
            routes=[
                Route("/healthz", _healthz),
                Route("/readyz", self._readyz),
                Route("/metrics", self._metrics),
            ],
            lifespan=self._lifespan,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _RESERVED:
            await self.starlette(scope, receive, send)
            return
        status = await self._proxied(scope, receive, send)
        self.metrics.requests.labels(str(status)).inc()

    async def _proxied(self, scope: Scope, receive: Receive, send: Send) -> int:
        assert self._upstream is not None and self._authenticator is not None  # noqa: S101
        if scope["method"] not in _METHODS:
            response = _error(405, "Method not allowed", f"{scope['method']} is not proxied")
            await response(scope, receive, send)
            return response.status_code
        try:
            if self._authenticator.module != "noop":
                request = Request(scope, receive)
                principal = await self._authenticator.authenticate(request)
                self._authenticator.authorize(principal, "chat")
                if self._upstream.users is not None:  # the caller's token is exchanged
                    attributes = principal.attributes
                    bind_caller(caller_from_claims(attributes, bearer_credential(request)))
            return await forward(scope, receive, send, self._upstream)
        except ClientGoneError:
            return _CLIENT_CLOSED
        except UnicodeDecodeError:
            response = _error(400, "Bad request", "path and query must be ASCII (percent-encoded)")
        except LlamaEntraError as exc:
            response = _answer(exc)
        await response(scope, receive, send)
        return response.status_code

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        config = self.config
        async with AsyncExitStack() as stack:
            authenticator = build_authenticator(config.authentication)
            stack.push_async_callback(authenticator.aclose)
            warn_if_exposed(config.authentication, config.proxy.host)
            manager = self._tokens
            if manager is None:
                assert config.azure_entra_id is not None  # noqa: S101 - checked in __init__
                manager = create_token_manager(config.azure_entra_id)
            await manager.start()
            stack.push_async_callback(manager.aclose)
            self.metrics.attach(manager)
            session = upstream_session(config.proxy)
            stack.push_async_callback(session.close)
            urls = config.proxy.upstream_urls()
            pool = None
            if len(urls) > 1:
                strategy = config.proxy.upstreams.strategy if config.proxy.upstreams else "priority"
                pool = DeploymentPool(urls, strategy)
                self.metrics.attach_pool(pool)
            users = create_user_tokens(config.azure_entra_id)
            if users is not None:
                stack.push_async_callback(users.aclose)
                register_user_token_metrics(self.metrics.registry, users.cache)
            self._upstream = Upstream(
                session=session,
                tokens=manager,
                url=yarl.URL(urls[0]),
                replay_limit_bytes=config.proxy.replay_limit_bytes,
                metrics=self.metrics,
                pool=pool,
                users=users,
            )
            self._authenticator = authenticator
            yield

    async def _readyz(self, request: Request) -> Response:
        assert self._upstream is not None  # noqa: S101 - set by the lifespan
        manager = self._upstream.tokens
        try:
            await manager.token()
        except TokenError as exc:
            return _error(503, "Entra ID token unavailable", exc.cause)
        status = manager.status()
        body: dict[str, object] = {"ready": True, "expires_in_seconds": status.expires_in_seconds}
        if self._upstream.pool is not None:
            # Ready while any upstream cools down: requests go to the others or get 429 with
            # the soonest wait, and only time (not a restart) ends a cool-down.
            body["upstreams"] = _upstream_states(self._upstream.pool)
        return JSONResponse(body)

    async def _metrics(self, request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def create_proxy_app(config: LlamaEntraConfig, *, tokens: TokenManager | None = None) -> ProxyApp:
    """The proxy for ``config`` (``proxy.upstream`` and ``azure_entra_id`` are required)."""
    return ProxyApp(config, tokens)


async def _healthz(request: Request) -> Response:
    return JSONResponse({"alive": True})


def _error(
    status: int, response: str, cause: str, headers: dict[str, str] | None = None
) -> Response:
    return JSONResponse({"detail": {"response": response, "cause": cause}}, status, headers)


def _upstream_states(pool: DeploymentPool) -> list[dict[str, object]]:
    now = time.monotonic()
    return [
        {
            "url": deployment.base_url,
            "cooling_down_seconds": round(max(0.0, deployment.cooling_until - now), 1),
        }
        for deployment in pool.deployments
    ]


def _azure_answer(exc: UpstreamError, status: int) -> Response:
    """Azure's own error shape (what an OpenAI or Azure SDK reads), with its headers."""
    error = dict(exc.azure_error) or {"code": str(status), "message": str(exc)}
    return JSONResponse({"error": error}, status, dict(exc.headers))


def _answer(exc: LlamaEntraError) -> Response:
    match exc:
        case AzureThrottledError():
            return _azure_answer(exc, 429)
        case UpstreamError(status=503):
            return _azure_answer(exc, 503)
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

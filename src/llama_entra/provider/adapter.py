"""The Entra ID part of the ``remote::azure-entra`` inference adapter, the same on both backends.

Each backend's adapter class (``llama_entra.backends.*_provider``) is
``class AzureEntraAdapter(EntraAdapterMixin, <its remote::azure adapter>)``: chat completions
(plain and streaming), completions, embeddings and model listing are the backend's own
OpenAI-mixin code; this mixin replaces how it gets its client and turns auth failures into
errors with an HTTP status.

- The first call builds the token manager, starts its background refresh, and builds one
  ``AsyncOpenAI`` over one pooled HTTP client whose auth flow (``EntraAuthFlow``) attaches the
  token per request; the first token is fetched then, never at start-up. ``client`` returns that
  client; the backend never builds another (both would otherwise build one per key or per call).
- ``list_models()`` asks Azure only with ``refresh_models: true``: Llama Stack lists every
  provider once at start-up, which must not need a token.
- Every call first makes sure a token can be had, so an Entra failure is raised at once as the
  ``TokenError`` (``status_code`` 503, message ``Entra ID token unavailable: <cause>``), not
  retried by the OpenAI SDK as a connection error. Azure refusing a freshly fetched token is
  ``UpstreamAuthError`` (502); Azure's ``PermissionDenied`` (no role on the resource) is
  ``AzurePermissionError`` (502, naming the role and the principal) after no refresh at all.
  Llama Stack servers answer with an exception's ``status_code``.
- Azure's 429 is called again after Azure's wait as ``azure_entra_id.retries`` allows (the one
  retry policy, ``llama_entra.azure.retry``); the OpenAI SDK's own retries are off. A 429 the
  policy lets through is ``AzureThrottledError`` (``status_code`` 429, Azure's message with its
  "retry after N seconds"), marked final so that the service above does not retry it again.
- With ``endpoints`` (several Azure OpenAI resources), one ``AsyncOpenAI`` per resource over the
  same pooled HTTP client and token manager; ``DeploymentPool`` picks the resource per call and
  moves it on 429, 503 or a refused connection, before any output (``llama_entra.azure``). The
  backend's code reads ``client``, so the resource of the call in progress is a context
  variable: each call (each task) sees its own.
- ``shutdown()`` stops the refresh task and closes the HTTP client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import openai
from openai import AsyncOpenAI

from llama_entra.azure import DeploymentPool, RateLimitRetry, classify_azure_error
from llama_entra.backends.openai_chunks import ValidatingOpenAI
from llama_entra.backends.upstream import never_connected
from llama_entra.entra import TokenManager, create_token_manager
from llama_entra.entra.claims import principal_of
from llama_entra.errors import (
    AzurePermissionError,
    AzureThrottledError,
    AzureUnreachableError,
    TokenError,
    UpstreamAuthError,
    UpstreamError,
)

__all__ = ["PLACEHOLDER_API_KEY", "EntraAdapterMixin", "entra_errors"]

logger = logging.getLogger(__name__)

# The OpenAI SDK wants a key; the auth flow replaces it with the token on every request.
PLACEHOLDER_API_KEY = "entra-id-token-per-request"
# The base URL of the resource serving the call in progress (with ``endpoints``).
_resource: ContextVar[str | None] = ContextVar("azure_entra_resource", default=None)

if TYPE_CHECKING:

    class _AdapterBase:
        """What the mixin uses of the backend's OpenAI-mixin adapter (for the type checker)."""

        config: Any

        def get_base_url(self) -> str:
            raise NotImplementedError

        def entra_http_client(self, tokens: TokenManager) -> Any:
            """The backend's pooled async HTTP client with an ``EntraAuthFlow`` as its auth."""
            raise NotImplementedError

        async def list_models(self) -> Any:
            raise NotImplementedError

        async def shutdown(self) -> None:
            raise NotImplementedError

        async def openai_completion(self, params: Any) -> Any:
            raise NotImplementedError

        async def openai_chat_completion(self, params: Any) -> Any:
            raise NotImplementedError

        async def openai_embeddings(self, params: Any) -> Any:
            raise NotImplementedError

else:
    _AdapterBase = object


@contextmanager
def entra_errors() -> Iterator[None]:
    """Re-raise the OpenAI SDK's view of an auth failure as the llama-entra error behind it."""
    try:
        yield
    except openai.APIConnectionError as exc:
        # The token request after an Azure 401 failed inside the auth flow; the SDK calls any
        # exception from its HTTP client a connection error.
        cause: BaseException | None = exc.__cause__
        while cause is not None and not isinstance(cause, TokenError):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        raise type(cause)(cause.cause) from exc
    except openai.RateLimitError as exc:
        raise _throttled(exc) from exc
    except openai.AuthenticationError as exc:
        if exc.code == "PermissionDenied":
            sent = exc.response.request.headers.get("Authorization", "")
            raise AzurePermissionError(principal_of(sent.removeprefix("Bearer "))) from exc
        raise UpstreamAuthError(
            "Azure OpenAI rejected a freshly issued Entra ID token: check that the identity has "
            "the 'Cognitive Services OpenAI User' role on the resource",
            status=502,
        ) from exc


@contextmanager
def refusals_that_move() -> Iterator[None]:
    """Re-raise a refused connection and Azure's 503 as the errors that move a call elsewhere."""
    try:
        yield
    except openai.APITimeoutError:
        raise  # it may have reached the model: never sent elsewhere
    except openai.APIConnectionError as exc:
        if never_connected(exc):
            raise AzureUnreachableError() from exc
        raise
    except openai.InternalServerError as exc:
        if exc.status_code == 503:
            raise UpstreamError(str(exc), status=503) from exc
        raise


def _throttled(exc: openai.RateLimitError) -> AzureThrottledError:
    """Azure's 429 with its wait; the message keeps "retry after N seconds" for a server."""
    error = classify_azure_error(429, str(exc), body=exc.body, headers=exc.response.headers)
    assert isinstance(error, AzureThrottledError)  # noqa: S101 - a 429 always classifies
    if error.retry_after is not None and "retry after" not in error.message.lower():
        error.message = f"{error.message} Please retry after {error.retry_after} seconds."
        error.args = (error.message,)
    return error


@dataclass(frozen=True, slots=True)
class _Session:
    """The token manager and OpenAI client used on one event loop."""

    loop: asyncio.AbstractEventLoop
    tokens: TokenManager
    clients: dict[str, AsyncOpenAI]  # per resource's base URL; the first is the default
    retry: RateLimitRetry
    pool: DeploymentPool | None  # several resources (``endpoints``)

    def client(self) -> AsyncOpenAI:
        """The client of the resource serving the call in progress (else the first)."""
        resource = _resource.get()
        return self.clients[resource] if resource else next(iter(self.clients.values()))


class EntraAdapterMixin(_AdapterBase):
    """See the module docstring; goes first in the adapter's bases."""

    _entra_session: _Session | None = None
    applies_retry_policy = True  # llama-entra's library mode leaves its SDK client alone
    builds_own_http_client = True  # its token-carrying client: library mode does not share one

    async def _session(self) -> _Session:
        """The session of the running event loop, built (and its refresh started) on first use.

        A llama-stack 0.7.3 server initializes providers on a temporary event loop and serves on
        another; nothing bound to a loop (refresh task, pooled connections) is made before the
        first call, and a call on a new loop gets a new session (the old loop is gone).
        """
        loop = asyncio.get_running_loop()
        session = self._entra_session
        if session is not None and session.loop is loop:
            return session
        tokens = create_token_manager(self.config.azure_entra_id)
        http_client = self.entra_http_client(tokens)
        urls = self.config.base_urls()
        clients: dict[str, AsyncOpenAI] = {
            url: ValidatingOpenAI(
                api_key=PLACEHOLDER_API_KEY,
                base_url=url,
                http_client=http_client,
                max_retries=0,  # the retry policy below is the only one
            )
            for url in urls
        }
        endpoints = self.config.endpoints  # more than one URL only with endpoints
        pool = DeploymentPool(urls, endpoints.strategy) if len(urls) > 1 else None
        retry = RateLimitRetry(self.config.azure_entra_id.retries)
        session = _Session(loop, tokens, clients, retry, pool)
        self._entra_session = session
        await tokens.start()
        logger.info(
            "remote::azure-entra ready for %s (identity %s); no token fetched yet",
            self.get_base_url(),
            tokens.identity,
        )
        return session

    async def shutdown(self) -> None:
        """Stop the refresh task, close the HTTP client."""
        session, self._entra_session = self._entra_session, None
        try:
            if session is not None and session.loop is asyncio.get_running_loop():
                await session.tokens.aclose()
                await session.client().close()  # the HTTP client all of them share
        finally:
            await super().shutdown()

    @property
    def client(self) -> AsyncOpenAI:
        """The provider's OpenAI client on this loop (the token is attached per request)."""
        session = self._entra_session
        if session is None:
            raise RuntimeError("remote::azure-entra has made no call on this event loop yet")
        return session.client()

    @property
    def token_manager(self) -> TokenManager | None:
        """The token manager of the current session (None before the first call)."""
        return self._entra_session.tokens if self._entra_session else None

    def get_api_key(self) -> str:
        """Not a credential: tells the backend a key is in place (the token comes per request)."""
        return PLACEHOLDER_API_KEY

    async def _ensure_token(self) -> _Session:
        session = await self._session()
        await session.tokens.token()
        return session

    async def _azure[R](self, call: Callable[[], Awaitable[R]]) -> R:
        """``call()`` to Azure with Entra errors made clear, under the retry policy."""
        session = await self._ensure_token()

        async def attempt() -> R:
            with entra_errors():
                return await call()

        pool = session.pool
        if pool is None:
            return await session.retry.run(attempt)

        async def on_resource(base_url: str) -> R:
            current = _resource.set(base_url)
            try:
                with refusals_that_move():
                    return await attempt()
            finally:
                _resource.reset(current)

        return await session.retry.run(lambda: pool.call(on_resource))

    async def list_models(self) -> Any:
        """Azure's deployments only with ``refresh_models: true``; else None (no start-up call).

        Llama Stack lists every provider once at start-up; the registered models are enough.
        """
        if not self.config.refresh_models:
            return None
        return await super().list_models()

    async def list_provider_model_ids(self) -> Iterable[str]:
        """Deployments Azure lists (only when ``refresh_models`` is on)."""
        await self._ensure_token()
        with entra_errors():
            return [model.id async for model in self.client.models.list()]

    async def openai_completion(self, params: Any) -> Any:
        """The backend's completion call, with Entra errors made clear."""
        return await self._azure(lambda: super(EntraAdapterMixin, self).openai_completion(params))

    async def openai_chat_completion(self, params: Any) -> Any:
        """The backend's chat completion call (plain or streaming), with Entra errors made clear."""
        return await self._azure(
            lambda: super(EntraAdapterMixin, self).openai_chat_completion(params)
        )

    async def openai_embeddings(self, params: Any) -> Any:
        """The backend's embeddings call, with Entra errors made clear."""
        return await self._azure(lambda: super(EntraAdapterMixin, self).openai_embeddings(params))

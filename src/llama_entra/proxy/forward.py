"""Forward one request to Azure OpenAI with an Entra token, streaming both ways.

A plain ASGI function, not a Starlette endpoint: every request pays for each layer, and the
proxy's budget is well under a millisecond. Hop-by-hop headers (RFC 9110 section 7.6.1, and
any the ``Connection`` header names) are not forwarded; the caller's ``api-key`` and
``Authorization`` never leave the proxy. Response bodies pass through as raw bytes, so gzip
stays gzip and SSE chunks go out as the upstream sends them. A request body up to
``replay_limit_bytes`` is buffered, which lets an upstream 401 be retried once with a fresh
token; larger bodies stream up without a retry. A caller that hangs up mid-stream stops the
relay and frees the upstream connection at once.

With several upstreams (``Upstream.pool``) a buffered request moves to the next upstream when
one answers 429 or 503 or refuses the connection (``llama_entra.azure.deployments``), always
before anything was relayed: once the status line is sent, the answer is the caller's. A
request whose outcome is unknown (a timeout or a connection lost after it was sent) never
moves: it may have been served and billed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

import aiohttp
import yarl
from pydantic import SecretStr
from starlette.types import Message, Receive, Scope, Send

from llama_entra.azure import DeploymentPool
from llama_entra.entra import TokenManager
from llama_entra.errors import AzureUnreachableError, UpstreamError, UpstreamUnavailableError
from llama_entra.identity import UserTokens
from llama_entra.proxy.metrics import ProxyMetrics
from llama_entra.proxy.refusals import raise_if_refused
from llama_entra.proxy.upstream import upstream_url
from llama_entra.telemetry import spans

__all__ = ["HOP_BY_HOP", "Upstream", "forward"]

logger = logging.getLogger(__name__)

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# ``expect``: the caller's ``100-continue`` was answered by our server already.
_NEVER_FORWARDED = HOP_BY_HOP | {
    b"host",
    b"content-length",
    b"expect",
    b"api-key",
    b"authorization",
}


@dataclass(frozen=True, slots=True)
class Upstream:
    """Everything ``forward`` needs that lives as long as the app."""

    session: aiohttp.ClientSession
    tokens: TokenManager
    url: yarl.URL  # the only upstream, or the first of ``pool``
    replay_limit_bytes: int
    metrics: ProxyMetrics
    pool: DeploymentPool | None = None  # several upstreams (``proxy.upstreams``)
    users: UserTokens | None = None  # on-behalf-of: the caller's own identity

    async def token(self) -> SecretStr:
        """The calling user's token (on-behalf-of), else the proxy's own."""
        user_token = await self.users.token() if self.users is not None else None
        return user_token if user_token is not None else await self.tokens.token()

    def invalidate(self, rejected: SecretStr) -> None:
        """Azure refused ``rejected``: drop it from the user's or the proxy's cache."""
        if self.users is None or not self.users.drop(rejected):
            self.tokens.invalidate(rejected)


class ClientGoneError(Exception):
    """The caller disconnected before its request body was read."""


def _named_by_connection(headers: Iterable[tuple[bytes, bytes]]) -> set[bytes]:
    return {
        token.strip().lower()
        for name, value in headers
        if name.lower() == b"connection"
        for token in value.split(b",")
    }


def _request_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    named = _named_by_connection(headers)
    return [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in headers
        if name not in _NEVER_FORWARDED and name not in named  # ASGI names are lower-case
    ]


def _response_headers(response: aiohttp.ClientResponse) -> list[tuple[bytes, bytes]]:
    named = _named_by_connection(response.raw_headers)
    return [
        (name, value)
        for name, value in response.raw_headers
        if name.lower() not in HOP_BY_HOP and name.lower() not in named
    ]


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGoneError
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _body_stream(receive: Receive, read: asyncio.Event) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGoneError
        yield message.get("body", b"")
        if not message.get("more_body", False):
            read.set()
            return


async def forward(scope: Scope, receive: Receive, send: Send, upstream: Upstream) -> int:
    """Send the request of ``scope`` upstream with an Entra token and stream the answer back.

    Returns the status sent to the caller. Raises ``UpstreamError`` (502),
    ``UpstreamUnavailableError`` (504), ``TokenError`` or ``ClientGoneError`` before anything
    was sent; after the status line, an upstream failure just ends the body early.
    """
    path: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope["query_string"]
    upstream_url(upstream.url, path, query)  # a path that is not ASCII fails before the body
    raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
    headers = _request_headers(raw_headers)
    found = dict(raw_headers)
    declared = found.get(b"content-length", b"").decode("latin-1")
    size = int(declared) if declared.isdigit() else (None if b"transfer-encoding" in found else 0)
    replayable = size is not None and size <= upstream.replay_limit_bytes
    body_read = asyncio.Event()
    body: bytes | AsyncIterator[bytes] | None
    if replayable:
        received = await _body(receive)
        body_read.set()
        upstream.metrics.bytes.labels("upstream").inc(len(received))
        body = received or None  # no body at all rather than an empty one
    else:
        body = upstream.metrics.count(_body_stream(receive, body_read), "upstream")
    if declared.isdigit():
        headers.append(("content-length", declared))
    method: str = scope["method"]

    async def send_to(base: yarl.URL) -> aiohttp.ClientResponse:
        url = upstream_url(base, path, query)
        return await _send_with_token(upstream, method, url, headers, body, replayable)

    if upstream.pool is None:
        response = await send_to(upstream.url)
    else:

        async def served_at(base_url: str) -> aiohttp.ClientResponse:
            return await raise_if_refused(await send_to(yarl.URL(base_url)))

        response = await upstream.pool.call(served_at, failover=replayable)
    try:
        await _relay(response, receive, send, body_read, upstream.metrics)
    finally:
        response.release()
    return response.status


async def _send_with_token(
    upstream: Upstream,
    method: str,
    url: yarl.URL,
    headers: list[tuple[str, str]],
    body: bytes | AsyncIterator[bytes] | None,
    replayable: bool,
) -> aiohttp.ClientResponse:
    """Send with the held Entra token; a 401 is sent again once with a fresh one (if it can)."""
    token = await upstream.token()
    response = await _send(upstream.session, method, url, headers, body, token)
    if response.status == 401 and replayable:
        response.release()
        logger.info("upstream answered 401; retrying once with a fresh Entra ID token")
        upstream.metrics.unauthorized_retries.inc()
        with spans.span("azure.unauthorized_retry", {"llama_entra.retry.reason": "azure_401"}):
            upstream.invalidate(token)
            token = await upstream.token()
            response = await _send(upstream.session, method, url, headers, body, token)
    return response


async def _send(
    session: aiohttp.ClientSession,
    method: str,
    url: yarl.URL,
    headers: list[tuple[str, str]],
    body: bytes | AsyncIterator[bytes] | None,
    token: SecretStr,
) -> aiohttp.ClientResponse:
    outgoing = [*headers, ("Authorization", f"Bearer {token.get_secret_value()}")]
    try:
        return await session.request(
            method, url, headers=outgoing, data=body, allow_redirects=False
        )
    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
        # No connection: the request was never sent, so another upstream may have it.
        raise AzureUnreachableError(f"Azure OpenAI is unreachable ({url.host})") from exc
    except TimeoutError as exc:
        raise UpstreamUnavailableError(f"Azure OpenAI did not answer in time ({url.host})") from exc
    except aiohttp.ClientError as exc:
        raise UpstreamError(f"Azure OpenAI is unreachable ({url.host})", status=502) from exc


async def _relay(
    response: aiohttp.ClientResponse,
    receive: Receive,
    send: Send,
    body_read: asyncio.Event,
    metrics: ProxyMetrics,
) -> None:
    """Stream ``response`` to the caller until it ends or the caller hangs up."""
    await send(
        {
            "type": "http.response.start",
            "status": response.status,
            "headers": _response_headers(response),
        }
    )
    sent = metrics.bytes.labels("downstream")
    relaying = asyncio.current_task()
    assert relaying is not None  # noqa: S101 - always inside a task under an ASGI server
    hung_up = False

    def stop_if_hung_up(watch: asyncio.Future[Message]) -> None:
        # uvicorn drops writes to a closed connection without an error, so the only sign of a
        # caller that went away is ``http.disconnect`` from ``receive``.
        nonlocal hung_up
        if not watch.cancelled() and watch.exception() is None:
            hung_up = watch.result()["type"] == "http.disconnect"
            if hung_up:
                relaying.cancel()

    watch: asyncio.Future[Message] | None = None
    try:
        async for chunk in response.content.iter_any():
            if watch is None and body_read.is_set():  # ``receive`` is free once the body is in
                watch = asyncio.ensure_future(receive())
                watch.add_done_callback(stop_if_hung_up)
            sent.inc(len(chunk))
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        if watch is not None:
            watch.remove_done_callback(stop_if_hung_up)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if not hung_up:
            raise
        relaying.uncancel()
        logger.info("caller disconnected mid-response; upstream stream closed")
    except (aiohttp.ClientError, TimeoutError) as exc:
        # The status line is already sent: all that is left is to end the stream early.
        logger.warning("upstream stream broke: %s", type(exc).__name__)
    finally:
        if watch is not None:
            watch.cancel()

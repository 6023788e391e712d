"""Forward one request to Azure OpenAI with an Entra token, streaming both ways.

Hop-by-hop headers (RFC 9110 section 7.6.1, and any the ``Connection`` header names) are not
forwarded; the caller's ``api-key`` and ``Authorization`` never leave the proxy. Response
bodies pass through as raw bytes (``aiter_raw``), so gzip stays gzip and SSE chunks arrive as
the upstream sends them. A request body up to ``replay_limit_bytes`` is buffered, which lets an
upstream 401 be retried once with a fresh token; larger bodies stream up without a retry.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable

import httpx
from pydantic import SecretStr
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from llama_entra.entra import TokenManager
from llama_entra.errors import UpstreamError, UpstreamUnavailableError
from llama_entra.proxy.metrics import ProxyMetrics

__all__ = ["HOP_BY_HOP", "forward", "upstream_url"]

logger = logging.getLogger(__name__)

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_NEVER_FORWARDED = HOP_BY_HOP | {"host", "content-length", "api-key", "authorization"}


def upstream_url(upstream: httpx.URL, path: str, query: bytes) -> httpx.URL:
    """Where a request for ``path`` goes.

    Paths under ``/openai/`` (what Azure SDKs send) go to the upstream's origin as they are;
    any other path is relative to the upstream base (what OpenAI SDKs with ``base_url`` send).
    """
    if path.startswith("/openai/"):
        target = upstream.copy_with(path=path)
    else:
        target = upstream.copy_with(path=upstream.path.rstrip("/") + path)
    return target.copy_with(query=query or None)


def _request_headers(headers: Iterable[tuple[str, str]], connection: str) -> list[tuple[str, str]]:
    named = {token.strip().lower() for token in connection.split(",") if token.strip()}
    return [
        (name, value)
        for name, value in headers
        if name.lower() not in _NEVER_FORWARDED and name.lower() not in named
    ]


def _response_headers(response: httpx.Response) -> dict[str, str]:
    named = {t.strip().lower() for t in response.headers.get("connection", "").split(",")}
    return {
        name: value
        for name, value in response.headers.multi_items()
        if name.lower() not in HOP_BY_HOP and name.lower() not in named
    }


async def forward(
    request: Request,
    client: httpx.AsyncClient,
    tokens: TokenManager,
    upstream: httpx.URL,
    *,
    replay_limit_bytes: int,
    metrics: ProxyMetrics,
) -> Response:
    """Send ``request`` upstream with a fresh-enough token and stream the answer back."""
    url = upstream_url(upstream, request.url.path, request.scope.get("query_string", b""))
    headers = _request_headers(request.headers.items(), request.headers.get("connection", ""))
    declared = request.headers.get("content-length", "")
    chunked = "transfer-encoding" in request.headers
    size = int(declared) if declared.isdigit() else (None if chunked else 0)
    replayable = size is not None and size <= replay_limit_bytes
    body: bytes | AsyncIterator[bytes]
    if replayable:
        body = await request.body()
        metrics.bytes.labels("upstream").inc(len(body))
    else:
        body = metrics.count(request.stream(), "upstream")
    if declared.isdigit():
        headers.append(("content-length", declared))

    token = await tokens.token()
    response = await _send(client, request.method, url, headers, body, token)
    if response.status_code == 401 and replayable:
        await response.aclose()
        logger.info("upstream answered 401; retrying once with a fresh Entra ID token")
        metrics.unauthorized_retries.inc()
        tokens.invalidate(token)
        token = await tokens.token()
        response = await _send(client, request.method, url, headers, body, token)
    return StreamingResponse(
        metrics.count(_relay(response), "downstream"),
        status_code=response.status_code,
        headers=_response_headers(response),
        background=BackgroundTask(response.aclose),
    )


async def _send(
    client: httpx.AsyncClient,
    method: str,
    url: httpx.URL,
    headers: list[tuple[str, str]],
    body: bytes | AsyncIterator[bytes],
    token: SecretStr,
) -> httpx.Response:
    outgoing = client.build_request(
        method,
        url,
        headers=[*headers, ("authorization", f"Bearer {token.get_secret_value()}")],
        content=body,
    )
    try:
        return await client.send(outgoing, stream=True)
    except httpx.TimeoutException as exc:
        raise UpstreamUnavailableError(f"Azure OpenAI did not answer in time ({url.host})") from exc
    except httpx.TransportError as exc:
        raise UpstreamError(f"Azure OpenAI is unreachable ({url.host})", status=502) from exc


async def _relay(response: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    except httpx.TransportError as exc:
        # The status line is already sent: all that is left is to end the stream early.
        logger.warning("upstream stream broke: %s", type(exc).__name__)

"""Service mode: enough HTTP connections to the Llama Stack server for many open streams.

Each open stream holds one connection to the server for as long as the model streams. The
generated clients' own limits are made for scripts: llama-stack-client keeps at most 100
connections (20 of them alive between calls), OGX's client five per CPU (10 on two cores).
Beyond that, streams wait in turn for a connection (seconds each) before the server even sees
them. Both backends' service clients allow ``CONNECTIONS``.

Not in one pool: httpcore looks at every connection of a pool each time a request starts or a
response closes, and for each idle one it counts the whole pool again. With hundreds of
streams on one pool that bookkeeping grows with the square of the open connections per event
(and the cube when the streams end together): profiled at 200 streams it was a third of the
service's CPU, and 1,000 streams did not finish within minutes. ``PooledTransport`` spreads
the requests in turn over ``POOLS`` pools of ``POOL_CONNECTIONS`` each, so that every event
looks at one small pool. The proxy the environment names for the server's URL (``HTTP_PROXY``,
``NO_PROXY``, ...) and the CA files it names (``SSL_CERT_FILE``) apply, as in httpx's own client.
Idle connections are dropped after ``KEEPALIVE_SECONDS``, before the server (uvicorn: 5 s)
closes them: a call sent as the server closes its connection fails with a connection error,
which before the first streamed chunk counts as Azure refusing the token (a Llama Stack server
drops a stream that way) and costs a fresh token.
"""

from __future__ import annotations

import itertools
import urllib.request

import httpx

__all__ = [
    "CONNECTIONS",
    "KEEPALIVE_SECONDS",
    "POOLS",
    "POOL_CONNECTIONS",
    "PooledTransport",
    "environment_proxy",
    "service_http_client",
]

POOLS = 16
POOL_CONNECTIONS = 64
CONNECTIONS = POOLS * POOL_CONNECTIONS  # 1,024: about the OpenAI SDK's 1,000 towards Azure
KEEPALIVE_SECONDS = 4.0


class PooledTransport(httpx.AsyncBaseTransport):
    """httpx's transport over ``pools`` connection pools, each request on the next one."""

    def __init__(
        self,
        *,
        pools: int = POOLS,
        connections: int = POOL_CONNECTIONS,
        proxy: str | None = None,
    ) -> None:
        limits = httpx.Limits(
            max_connections=connections,
            max_keepalive_connections=connections,
            keepalive_expiry=KEEPALIVE_SECONDS,
        )
        self.pools = [httpx.AsyncHTTPTransport(limits=limits, proxy=proxy) for _ in range(pools)]
        self._turns = itertools.cycle(self.pools)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` on the next pool (its keep-alive connections, or a new one)."""
        return await next(self._turns).handle_async_request(request)

    async def aclose(self) -> None:
        """Close every pool's connections."""
        for pool in self.pools:
            await pool.aclose()


def environment_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (None if none, or ``NO_PROXY`` covers it)."""
    target = httpx.URL(url)
    if urllib.request.proxy_bypass(target.host):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(target.scheme) or proxies.get("all")


def service_http_client(url: str, timeout: float) -> httpx.AsyncClient:
    """httpx's client for the Llama Stack server at ``url`` (redirects followed), on a
    ``PooledTransport``: ``CONNECTIONS`` connections in ``POOLS`` pools, all kept alive."""
    transport = PooledTransport(proxy=environment_proxy(url))
    return httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=True)

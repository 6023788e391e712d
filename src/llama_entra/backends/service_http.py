"""Service mode: enough HTTP connections to the Llama Stack server for many open streams.

Each open stream holds one connection to the server for as long as the model streams. The
generated clients' own limits are made for scripts: llama-stack-client keeps at most 100
connections (20 of them alive between calls), OGX's client five per CPU (10 on two cores).
Beyond that, streams wait in turn for a connection (seconds each) before the server even sees
them. Both backends' service clients allow ``CONNECTIONS``.
"""

from __future__ import annotations

import httpx

__all__ = ["CONNECTIONS", "service_http_client"]

CONNECTIONS = 1_000  # the OpenAI SDK's default towards Azure, for the same streams


def service_http_client(timeout: float) -> httpx.AsyncClient:
    """httpx's client as llama-stack-client builds it (environment proxies and CA files
    apply, redirects followed), with ``CONNECTIONS`` connections, all kept alive."""
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    return httpx.AsyncClient(limits=limits, timeout=timeout, follow_redirects=True)

"""llama-stack 0.7.3, library mode: pooled HTTP connections for each OpenAI-compatible provider.

That version's OpenAI mixin builds a new ``AsyncOpenAI`` client for every call (the key comes
per call, in the provider data), and with it a new ``httpx.AsyncClient``: when the provider
has a ``network`` section (the run configs set ``network.tls.verify``, as any deployment with
its own CA does) a client whose SSL context loads the CA bundle again, and every call then
opens a new TCP connection and TLS session to Azure. Profiled under 200 concurrent streams,
that set-up was the largest part of each answer's CPU after the store's write.

``share_http_clients(inference)`` gives each such adapter ``POOLS`` HTTP clients, built once
from the provider's own ``network`` settings (TLS, proxy, timeouts, headers, by Llama Stack's
own function) and handed to the ``AsyncOpenAI`` of each call in turn through
``get_extra_client_params``; the adapter's config is replaced by a copy without ``network``,
so the mixin uses that client as it is instead of merging the settings into a new one. The
key and the base URL stay per call (``AsyncOpenAI`` sends them per request); only connections
are reused, up to ``POOLS * POOL_CONNECTIONS`` per provider, all kept alive between calls.
Several pools, not one: httpcore looks at every connection of a pool each time a request
starts or ends, so one pool of a few hundred streaming connections costs more CPU per call
than the streams themselves (profiled). OGX already caches its client per key and base URL
and is left alone.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any

import httpx

__all__ = [
    "KEEPALIVE_SECONDS",
    "POOLS",
    "POOL_CONNECTIONS",
    "SharedHttpClients",
    "share_http_clients",
]

logger = logging.getLogger(__name__)
POOLS = 16
POOL_CONNECTIONS = 64  # 1,024 in all, about the OpenAI SDK's own default of 1,000
# Kept alive for less than a server keeps an idle connection (uvicorn, so the emulator: 5 s):
# a call sent on a connection the server is closing at that moment fails with an unknown
# outcome, which is never sent again (seen: 4 of 200 streams failed so between two bursts).
KEEPALIVE_SECONDS = 4.0
_LIMITS = httpx.Limits(
    max_connections=POOL_CONNECTIONS,
    max_keepalive_connections=POOL_CONNECTIONS,
    keepalive_expiry=KEEPALIVE_SECONDS,
)


class SharedHttpClients:
    """The clients ``share_http_clients`` made, to close at shutdown."""

    def __init__(self, clients: list[httpx.AsyncClient]) -> None:
        self.clients = clients

    async def aclose(self) -> None:
        """Close every shared client (its pooled connections)."""
        clients, self.clients = self.clients, []
        for client in clients:
            await client.aclose()


def share_http_clients(inference: object) -> SharedHttpClients:
    """One pooled ``httpx.AsyncClient`` for each OpenAI-mixin adapter behind ``inference``."""
    from llama_stack.providers.utils.inference.http_client import _build_network_client_kwargs

    table = getattr(inference, "routing_table", None)
    adapters: dict[str, Any] = getattr(table, "impls_by_provider_id", None) or {}
    clients: list[httpx.AsyncClient] = []
    for provider_id, adapter in adapters.items():
        extra = getattr(adapter, "get_extra_client_params", None)
        config: Any = getattr(adapter, "config", None)
        if not callable(extra) or not hasattr(config, "network"):
            continue
        # A provider with its own client (custom auth; remote::azure-entra builds its own
        # from the config's ``network``, so that must stay): keep it.
        if "http_client" in extra() or getattr(adapter, "builds_own_http_client", False):
            continue
        kwargs = _build_network_client_kwargs(config.network)
        if "verify" not in kwargs:
            kwargs["verify"] = adapter.shared_ssl_context
        pools = [httpx.AsyncClient(limits=_LIMITS, **kwargs) for _ in range(POOLS)]
        # A pydantic model refuses unknown attributes; these live on the instance.
        object.__setattr__(adapter, "config", config.model_copy(update={"network": None}))
        object.__setattr__(adapter, "get_extra_client_params", _with_client(extra, pools))
        clients += pools
        logger.debug("one HTTP connection pool for provider %s", provider_id)
    return SharedHttpClients(clients)


def _with_client(
    extra: Callable[[], dict[str, Any]], pools: list[httpx.AsyncClient]
) -> Callable[[], dict[str, Any]]:
    turns = itertools.cycle(pools)

    def params() -> dict[str, Any]:
        return {**extra(), "http_client": next(turns)}

    return params

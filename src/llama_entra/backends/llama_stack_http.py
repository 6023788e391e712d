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
than the streams themselves (profiled).

The ``AsyncOpenAI`` itself is kept too (``OpenAIClients``): one per key, base URL and pool, the
most recently used ``MAX_CLIENTS`` of them, instead of a new one per call (measured: about
7 KB of each open stream's memory, and the client's set-up on every call). The adapter's
``client`` property is answered from that cache; a call whose key or base URL (both may come
from the call's provider data) differs from every cached client's gets a new client of its own,
so a client never serves another key or URL. A client pushed out of the cache is dropped, not
closed: the pools are shared, and a stream still using it keeps working. OGX already caches its
client per key and base URL and is left alone.
"""

from __future__ import annotations

import itertools
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import httpx
from openai import AsyncOpenAI

from llama_entra.backends.openai_chunks import ValidatingOpenAI

__all__ = [
    "KEEPALIVE_SECONDS",
    "MAX_CLIENTS",
    "POOLS",
    "POOL_CONNECTIONS",
    "OpenAIClients",
    "SharedHttpClients",
    "share_http_clients",
]

logger = logging.getLogger(__name__)
POOLS = 16
POOL_CONNECTIONS = 64  # 1,024 in all, about the OpenAI SDK's own default of 1,000
MAX_CLIENTS = 4 * POOLS  # a few keys at once (a token and its successor, per-user tokens)
_CLIENTS_ATTRIBUTE = "_llama_entra_openai_clients"
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
        _answer_client_from(adapter, OpenAIClients(extra, pools))
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


class OpenAIClients:
    """``AsyncOpenAI`` clients per key, base URL and pool; the ``MAX_CLIENTS`` last used kept.

    ``extra`` is the adapter's own ``get_extra_client_params`` (static per provider: the
    adapters that hand in their own HTTP client are not given a cache); each new client gets
    the next of ``pools`` in turn, as ``_with_client`` does.
    """

    def __init__(self, extra: Callable[[], dict[str, Any]], pools: list[httpx.AsyncClient]) -> None:
        self._extra = extra
        self._pools = pools
        self._turns = itertools.cycle(range(len(pools)))
        self._clients: OrderedDict[tuple[str, str, int], AsyncOpenAI] = OrderedDict()

    def __len__(self) -> int:
        return len(self._clients)

    def get(self, api_key: str, base_url: str) -> AsyncOpenAI:
        """A client for exactly ``api_key`` and ``base_url``, on the next pool."""
        pool = next(self._turns)
        key = (api_key, base_url, pool)
        client = self._clients.get(key)
        if client is not None:
            self._clients.move_to_end(key)
            return client
        params = {**self._extra(), "http_client": self._pools[pool]}
        client = ValidatingOpenAI(api_key=api_key, base_url=base_url, **params)
        self._clients[key] = client
        while len(self._clients) > MAX_CLIENTS:
            self._clients.popitem(last=False)
        return client


def _answer_client_from(adapter: Any, clients: OpenAIClients) -> None:
    """Make ``adapter.client`` come from ``clients`` (its class's property, wrapped once)."""
    object.__setattr__(adapter, _CLIENTS_ATTRIBUTE, clients)
    owner = type(adapter)
    original = getattr(owner, "client", None)
    if not isinstance(original, property) or original.fget is None:
        return
    if getattr(original.fget, "cached_by_llama_entra", False):
        return
    build = original.fget

    def client(self: Any) -> Any:
        cache: OpenAIClients | None = self.__dict__.get(_CLIENTS_ATTRIBUTE)
        api_key = None if cache is None else self._get_api_key_from_config_or_provider_data()
        if cache is None or not api_key:
            return build(self)  # no cache, or no key: the library's own client or error
        return cache.get(api_key, self.get_base_url())

    client.cached_by_llama_entra = True  # type: ignore[attr-defined]
    client.__doc__ = build.__doc__
    # On the adapter's own class: another class's adapters keep the mixin's property.
    setattr(owner, "client", property(client))  # noqa: B010

"""Prometheus metrics of the sidecar proxy (``GET /metrics``, a registry per app).

Requests by status, bytes by direction (``upstream``: request bodies sent to Azure OpenAI,
``downstream``: response bodies relayed back), upstream 401 retries, the token manager's
metrics and, with several upstreams, each one's calls, 429s, refusals, failovers and cool-down
(``llama_entra_azure_deployment_*``, provider ``proxy``). No label carries a path, token or key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from llama_entra.azure import DeploymentPool
from llama_entra.azure.metrics import deployment_families
from llama_entra.entra import TokenManager
from llama_entra.entra.metrics import register_token_metrics

__all__ = ["ProxyMetrics"]


class ProxyMetrics:
    """Counters the proxy updates as it forwards."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "llama_entra_proxy_requests",
            "Requests answered by the proxy, by status",
            ["status"],
            registry=self.registry,
        )
        self.bytes = Counter(
            "llama_entra_proxy_bytes",
            "Body bytes forwarded, by direction (upstream, downstream)",
            ["direction"],
            registry=self.registry,
        )
        self.unauthorized_retries = Counter(
            "llama_entra_azure_unauthorized_retries",
            "Requests retried with a fresh Entra ID token after Azure OpenAI answered 401",
            registry=self.registry,
        )

    def attach(self, tokens: TokenManager) -> None:
        """Report the token manager from now on (the lifespan calls this once)."""
        register_token_metrics(self.registry, tokens)

    def attach_pool(self, pool: DeploymentPool) -> None:
        """Report the upstreams of ``pool`` from now on (the lifespan calls this once)."""
        self.registry.register(_PoolCollector(pool))

    async def count(self, chunks: AsyncIterator[bytes], direction: str) -> AsyncIterator[bytes]:
        """Pass ``chunks`` through, counting their bytes."""
        counter = self.bytes.labels(direction)
        async for chunk in chunks:
            counter.inc(len(chunk))
            yield chunk


class _PoolCollector(Collector):
    def __init__(self, pool: DeploymentPool) -> None:
        self.pool = pool

    def collect(self) -> Iterator[Metric]:
        yield from deployment_families({"proxy": self.pool})

"""Prometheus metrics of one service instance (a registry per app, no global state).

Requests by route, method and status; latency by route; the Entra token's state read from the
token manager at scrape time. Labels never carry a token, key or principal.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from llama_entra.entra import TokenManager

__all__ = ["ServiceMetrics"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class _TokenCollector(Collector):
    """Reads the token manager's status on each scrape."""

    def __init__(self, tokens: TokenManager) -> None:
        self.tokens = tokens

    def collect(self) -> Iterator[Metric]:
        status = self.tokens.status()
        has = GaugeMetricFamily(
            "llama_entra_entra_token_present", "1 when a valid Entra ID token is cached"
        )
        has.add_metric([], 1.0 if status.has_token else 0.0)
        yield has
        expires = GaugeMetricFamily(
            "llama_entra_entra_token_expires_in_seconds", "Seconds until the cached token expires"
        )
        expires.add_metric([], status.expires_in_seconds or 0.0)
        yield expires
        requests = GaugeMetricFamily(
            "llama_entra_entra_token_requests", "Token requests made to Entra ID since start"
        )
        requests.add_metric([], float(status.token_requests))
        yield requests


class ServiceMetrics:
    """The metrics of one app; ``registry`` is what ``/metrics`` renders."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "llama_entra_requests",
            "HTTP requests answered, by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "llama_entra_request_duration_seconds",
            "Time to the end of the response, by route",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.azure_retries = Counter(
            "llama_entra_azure_unauthorized_retries",
            "Calls retried with a fresh token after Azure answered 401",
            registry=self.registry,
        )

    def attach_tokens(self, tokens: TokenManager | None) -> None:
        """Report ``tokens``' state from now on (the lifespan calls this once)."""
        if tokens is not None:
            self.registry.register(_TokenCollector(tokens))

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

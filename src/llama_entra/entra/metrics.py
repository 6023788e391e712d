"""Prometheus view of a token manager, shared by the service and the proxy.

At scrape time: whether a valid token is held and seconds until it expires. As they happen:
token requests to Entra ID by outcome, and how long each took. No label carries a token.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from llama_entra.entra.manager import TokenManager

__all__ = ["LATENCY_BUCKETS", "register_token_metrics"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class _TokenStateCollector(Collector):
    def __init__(self, tokens: TokenManager) -> None:
        self.tokens = tokens

    def collect(self) -> Iterator[Metric]:
        status = self.tokens.status()
        present = GaugeMetricFamily(
            "llama_entra_entra_token_present", "1 when a valid Entra ID token is cached"
        )
        present.add_metric([], 1.0 if status.has_token else 0.0)
        yield present
        expires = GaugeMetricFamily(
            "llama_entra_entra_token_expires_in_seconds", "Seconds until the cached token expires"
        )
        expires.add_metric([], status.expires_in_seconds or 0.0)
        yield expires


def register_token_metrics(
    registry: CollectorRegistry, tokens: TokenManager, *, live: CollectorRegistry | None = None
) -> None:
    """Report ``tokens`` in ``registry`` from now on; its state also in ``live`` when given
    (the registry of what one worker process reads at scrape time)."""
    fetches = Counter(
        "llama_entra_entra_token_fetches",
        "Token requests to Entra ID, by outcome (success, rejected, unavailable)",
        ["outcome"],
        registry=registry,
    )
    latency = Histogram(
        "llama_entra_entra_token_fetch_duration_seconds",
        "Time one token request to Entra ID took, whatever its outcome",
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )

    def observe(outcome: str, seconds: float) -> None:
        fetches.labels(outcome).inc()
        latency.observe(seconds)

    tokens.observe_fetches(observe)
    registry.register(_TokenStateCollector(tokens))
    if live is not None:
        live.register(_TokenStateCollector(tokens))

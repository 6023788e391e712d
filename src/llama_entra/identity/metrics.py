"""Prometheus view of the per-user token cache, read at scrape time (no label names a user).

``llama_entra_obo_exchanges_total{outcome}``: on-behalf-of exchanges by outcome (``ok``;
``refused``: the caller's token or consent, a 401/403; ``unavailable``: Entra down or slow).
``llama_entra_obo_cached_users``: users holding a token now. ``llama_entra_obo_cache_lookups_total
{result}`` (``hit``/``miss``) and ``llama_entra_obo_cache_hit_ratio``.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from llama_entra.identity.cache import EXCHANGE_OUTCOMES, UserTokenCache

__all__ = ["register_user_token_metrics"]


class _UserTokenCollector(Collector):
    def __init__(self, cache: UserTokenCache) -> None:
        self.cache = cache

    def collect(self) -> Iterator[Metric]:
        cache = self.cache
        exchanges = CounterMetricFamily(
            "llama_entra_obo_exchanges",
            "On-behalf-of exchanges with Entra ID, by outcome",
            labels=["outcome"],
        )
        for outcome in EXCHANGE_OUTCOMES:
            exchanges.add_metric([outcome], cache.exchanges[outcome])
        yield exchanges
        yield GaugeMetricFamily(
            "llama_entra_obo_cached_users", "Users whose Azure token is cached", value=len(cache)
        )
        lookups = CounterMetricFamily(
            "llama_entra_obo_cache_lookups", "Per-user token lookups, by result", labels=["result"]
        )
        lookups.add_metric(["hit"], cache.hits)
        lookups.add_metric(["miss"], cache.misses)
        yield lookups
        total = cache.hits + cache.misses
        yield GaugeMetricFamily(
            "llama_entra_obo_cache_hit_ratio",
            "Share of per-user token lookups served from the cache",
            value=cache.hits / total if total else 0.0,
        )


def register_user_token_metrics(registry: CollectorRegistry, cache: UserTokenCache) -> None:
    """Report ``cache`` in ``registry`` from now on."""
    registry.register(_UserTokenCollector(cache))

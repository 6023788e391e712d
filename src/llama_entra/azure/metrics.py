"""Prometheus families of the Azure OpenAI resources in deployment pools (service and proxy).

Read from the pools at each scrape: calls, 429s, refusals and failovers per resource, and a
gauge that is 1 while a resource cools down. Labels: ``provider`` (the pool's owner: a
``remote::azure`` provider id, or ``proxy``) and ``resource`` (its base URL).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from llama_entra.azure.deployments import DeploymentPool

__all__ = ["deployment_families"]

_COUNTERS = (
    ("calls", "Calls sent to the resource"),
    ("throttled", "Calls the resource answered 429 (it then cools down)"),
    ("unavailable", "Calls refused (no connection, or 503) before any output"),
    ("failovers", "Calls moved from the resource to the next one"),
)


def deployment_families(pools: Mapping[str, DeploymentPool]) -> Iterator[Metric]:
    """The ``llama_entra_azure_deployment_*`` families of ``pools`` (keyed by owner)."""
    labels = ["provider", "resource"]
    families = {
        name: CounterMetricFamily(f"llama_entra_azure_deployment_{name}", text, labels=labels)
        for name, text in _COUNTERS
    }
    cooling = GaugeMetricFamily(
        "llama_entra_azure_deployment_cooling",
        "1 while the resource cools down and gets no calls",
        labels=labels,
    )
    now = time.monotonic()
    for owner, pool in pools.items():
        for deployment in pool.deployments:
            key = [owner, deployment.base_url]
            for name, family in families.items():
                family.add_metric(key, float(getattr(deployment, name)))
            cooling.add_metric(key, 1.0 if deployment.cooling(now) else 0.0)
    yield from families.values()
    yield cooling

"""Read one sample from a running server's Prometheus ``/metrics``."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["metric"]


def metric(base_url: str, name: str, **labels: str) -> float:
    """The value of sample ``name`` with ``labels`` at ``base_url/metrics``; 0 when absent."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0

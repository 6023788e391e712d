"""Prometheus metrics of one service instance (a registry per app, no global state).

Requests by route, method and status; latency by route; requests in progress; the token
manager's metrics (``llama_entra.entra.metrics``); Azure 401 retries, PermissionDenied answers
and 429s (retried, or answered to the caller) read from the client holder at scrape time;
tokens counted against the quotas and requests refused for quota (by limiter name). Labels never
carry a token, key or principal.

With several worker processes (``service.workers``), ``serve`` names a directory in
``PROMETHEUS_MULTIPROC_DIR`` before the workers start: prometheus-client's counters, histograms
and gauges then keep their values in files there, and ``render`` sums every worker's (the
requests in progress as a live sum). The values read at scrape time (the client holder's
retries and 429s, the token's state, the quotas' counts, the per-user token cache) are those
of the worker that answered the scrape: each worker has its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from llama_entra.azure.metrics import deployment_families
from llama_entra.entra.metrics import LATENCY_BUCKETS, register_token_metrics
from llama_entra.identity import register_user_token_metrics
from llama_entra.quotas import QuotaLimiter
from llama_entra.stack import Admission, ClientHolder

__all__ = ["ServiceMetrics"]


class _HolderCollector(Collector):
    """Reads the client holder's retry and PermissionDenied counts on each scrape."""

    def __init__(self, holder: ClientHolder) -> None:
        self.holder = holder

    def collect(self) -> Iterator[Metric]:
        holder = self.holder
        for name, text, value in (
            (
                "llama_entra_azure_unauthorized_retries",
                "Calls retried with a fresh Entra ID token after Azure OpenAI answered 401",
                holder.unauthorized_retries,
            ),
            (
                "llama_entra_azure_permission_denied",
                "Calls Azure OpenAI refused with PermissionDenied (the identity lacks a role)",
                holder.permission.count,
            ),
            (
                "llama_entra_azure_rate_limit_retries",
                "Calls made to Azure OpenAI again after its 429 and the wait it asked for",
                holder.rate_limit.retries,
            ),
            (
                "llama_entra_azure_rate_limited",
                "Azure OpenAI 429s answered to callers "
                "(retries used up, or a wait over the budget)",
                holder.rate_limit.passed_on,
            ),
        ):
            family = CounterMetricFamily(name, text)
            family.add_metric([], float(value))
            yield family
        if holder.admission is not None:
            yield from _admission_families(holder.admission)
        yield from deployment_families(self.holder.resources.pools)


def _admission_families(admission: Admission) -> Iterator[Metric]:
    waited = CounterMetricFamily(
        "llama_entra_admission_waited",
        "New Azure calls that waited their turn because this worker's event loop lagged",
    )
    waited.add_metric([], float(admission.waited))
    refused = CounterMetricFamily(
        "llama_entra_admission_refused",
        "New Azure calls refused with 503 after waiting their turn too long",
    )
    refused.add_metric([], float(admission.refused))
    lag = GaugeMetricFamily(
        "llama_entra_event_loop_lag_seconds",
        "How late this worker's event loop ran a 50 ms timer, last measured",
    )
    lag.add_metric([], admission.lag)
    queued = GaugeMetricFamily(
        "llama_entra_admission_waiting", "New Azure calls waiting their turn now"
    )
    queued.add_metric([], float(admission.waiting))
    return iter((waited, refused, lag, queued))


class _QuotaCollector(Collector):
    """Reads the token quotas' counts on each scrape (this process's, since it started)."""

    def __init__(self, quotas: QuotaLimiter) -> None:
        self.quotas = quotas

    def collect(self) -> Iterator[Metric]:
        spent = CounterMetricFamily(
            "llama_entra_quota_tokens_consumed",
            "Tokens (prompt plus completion, from Azure's usage) counted against the quotas",
        )
        spent.add_metric([], float(self.quotas.tokens_spent))
        yield spent
        refused = CounterMetricFamily(
            "llama_entra_quota_refused_requests",
            "Requests refused with 429 because a quota had nothing left, by limiter",
            labels=["limiter"],
        )
        for limiter in self.quotas.limiters:
            refused.add_metric([limiter.name], float(self.quotas.refused[limiter.name]))
        yield refused


class ServiceMetrics:
    """The metrics of one app; ``registry`` is what ``/metrics`` renders."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # Read at scrape time, from this process only (see the module docstring).
        self._live = CollectorRegistry()
        self._multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
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
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_progress = Gauge(
            "llama_entra_requests_in_progress",
            "HTTP requests being handled now (a scrape counts itself)",
            registry=self.registry,
            multiprocess_mode="livesum",
        )

    def attach(self, holder: ClientHolder, quotas: QuotaLimiter | None = None) -> None:
        """Report the holder's, its token manager's and the quotas' state (called once)."""
        self.registry.register(_HolderCollector(holder))
        self._live.register(_HolderCollector(holder))
        if quotas is not None and quotas.enabled:
            self.registry.register(_QuotaCollector(quotas))
            self._live.register(_QuotaCollector(quotas))
        if holder.tokens is not None:
            register_token_metrics(self.registry, holder.tokens, live=self._live)
        if holder.users is not None:
            register_user_token_metrics(self.registry, holder.users.cache)
            register_user_token_metrics(self._live, holder.users.cache)

    def render(self) -> bytes:
        """The Prometheus text of ``/metrics``: every worker's when there are several."""
        if self._multiprocess_dir is None:
            return generate_latest(self.registry)
        shared = CollectorRegistry()
        MultiProcessCollector(shared, path=self._multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(shared) + generate_latest(self._live)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

"""Models on several Azure OpenAI resources: the pools, and which copy of a model each serves.

With ``azure_entra_id.endpoints`` the enricher gives each further resource of a
``remote::azure`` provider a provider of its own (``<provider>-resource-<n>``) with a copy of
each model (``llama_entra.enrich``). ``ResourceRouter`` learns from Llama Stack's listings which
provider serves which base URL, hides the copies from the model list, and names the copy of a
model that serves a given resource; ``DeploymentPool`` (``llama_entra.azure.deployments``) picks
the resource per call.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from llama_entra.azure import DeploymentPool
from llama_entra.config import AzureDeployments
from llama_entra.enrich import resource_copy_of
from llama_entra.errors import UpstreamError
from llama_entra.stack.models import ModelInfo

__all__ = ["CoolingResource", "ResourceRouter"]


@dataclass(frozen=True, slots=True)
class CoolingResource:
    """A resource that gets no calls now: after a 429, a refused connection or a 503."""

    provider_id: str  # the provider serving it (``azure`` or ``azure-resource-N``)
    base_url: str
    seconds_left: float
    all_cooling: bool  # every resource of its model cools down: calls wait or get 429


class ResourceRouter:
    """The pools of the providers on several resources, and the models' copies per resource."""

    def __init__(self, endpoints: Mapping[str, AzureDeployments]) -> None:
        self.pools = {
            provider: DeploymentPool(spread.base_urls, spread.strategy)
            for provider, spread in endpoints.items()
        }
        self._providers_at: dict[str, list[str]] = {}  # base URL -> remote::azure provider ids
        self._copies: dict[str, ModelInfo] = {}
        self._models: list[ModelInfo] = []

    def saw_provider(self, provider_id: str, base_url: str) -> None:
        """A ``remote::azure`` provider of Llama Stack and its configured base URL."""
        providers = self._providers_at.setdefault(_normal(base_url), [])
        if provider_id not in providers:
            providers.append(provider_id)

    def saw_models(self, models: Iterable[ModelInfo]) -> list[ModelInfo]:
        """Learn Llama Stack's models; those callers see (the copies left out)."""
        self._models = list(models)
        self._copies = {
            m.id: m for m in self._models if resource_copy_of(m.provider_id) in self.pools
        }
        return [m for m in self._models if m.id not in self._copies]

    def cooling(self) -> list[CoolingResource]:
        """The resources getting no calls now, and for how long yet (readiness reports them)."""
        now = time.monotonic()
        found = []
        for provider, pool in self.pools.items():
            cooling = [d for d in pool.deployments if d.cooling(now)]
            for deployment in cooling:
                served_by = self._providers_at.get(_normal(deployment.base_url)) or [provider]
                found.append(
                    CoolingResource(
                        served_by[0],
                        deployment.base_url,
                        round(deployment.cooling_until - now, 1),
                        all_cooling=len(cooling) == len(pool.deployments),
                    )
                )
        return found

    def states(self) -> dict[str, list[dict[str, object]]]:
        """Each pool's resources: URL, seconds of cool-down left, and what they served."""
        now = time.monotonic()
        return {
            provider: [
                {
                    "url": d.base_url,
                    "cooling_down_seconds": round(max(0.0, d.cooling_until - now), 1),
                    "calls": d.calls,
                    "throttled": d.throttled,
                    "unavailable": d.unavailable,
                    "failovers": d.failovers,
                }
                for d in pool.deployments
            ]
            for provider, pool in self.pools.items()
        }

    def pool_for(self, model: ModelInfo | None) -> DeploymentPool | None:
        """The pool of ``model``'s provider, when it is on several resources."""
        return self.pools.get(model.provider_id) if model is not None and model.azure else None

    def model_at(self, model: ModelInfo, base_url: str) -> str:
        """The id of ``model``'s copy served from ``base_url``."""
        for provider_id in self._providers_at.get(_normal(base_url), ()):
            for candidate in self._models:
                same = candidate.provider_resource_id == model.provider_resource_id
                if candidate.provider_id == provider_id and same:
                    return candidate.id
        raise UpstreamError(
            f"no provider serves {model.provider_resource_id} at {base_url}: check that the "
            "Llama Stack run config was enriched with azure_entra_id.endpoints",
            status=502,
        )


def _normal(base_url: str) -> str:
    return base_url.rstrip("/")

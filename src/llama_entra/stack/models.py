"""``ModelInfo``: a model Llama Stack serves, as the client holder and the routes see it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ModelInfo"]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A model Llama Stack serves, and whether its provider is Azure."""

    id: str
    provider_id: str
    provider_resource_id: str
    model_type: str
    azure: bool

    @property
    def own_id(self) -> str:
        """The id without its provider's prefix (``gpt-4o-mini`` for ``azure/gpt-4o-mini``):
        how lightspeed-stack names a model, with the provider kept apart."""
        return self.id.removeprefix(f"{self.provider_id}/")

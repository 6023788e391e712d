"""``GET /v1/models``: what Llama Stack serves, in the OpenAI list shape."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from llama_entra.app.deps import HolderDep, authorized
from llama_entra.auth import Principal

__all__ = ["router"]

router = APIRouter(tags=["models"])


@router.get("/v1/models")
async def list_models(
    holder: HolderDep, _: Annotated[Principal, Depends(authorized("models"))]
) -> dict[str, Any]:
    """Every model, with its provider; needs no Azure credential."""
    models = await holder.models()
    return {
        "object": "list",
        "data": [
            {
                "id": model.id,
                "object": "model",
                "created": 0,
                "owned_by": model.provider_id,
                "provider_id": model.provider_id,
                "provider_resource_id": model.provider_resource_id,
                "model_type": model.model_type,
                "entra_auth": model.azure and holder.tokens is not None,
            }
            for model in models
        ],
    }

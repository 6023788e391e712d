"""``GET /v1/models``: one answer for lightspeed-stack clients, llama-stack-client and OpenAI SDKs.

The body carries OpenAI's list (``object: list``, ``data``) with Llama Stack's
``custom_metadata`` (``model_type``, ``provider_id``, ``provider_resource_id``) that
llama-stack-client and ogx-client read, those fields also at the top of each entry, and
lightspeed-stack's ``models`` list (``identifier``, ``type``, ``api_model_type``,
``model_type``, ``provider_id``, ``provider_resource_id``). ``?model_type=llm`` filters both.
Errors carry lightspeed's ``detail`` and OpenAI's ``error`` together.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from llama_entra.app.deps import HolderDep, authorized
from llama_entra.app.schemas import BothErrorResponse
from llama_entra.auth import Principal
from llama_entra.stack import ModelInfo

__all__ = ["router"]

router = APIRouter(tags=["models"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": BothErrorResponse} for status in (401, 403, 503)
}


@router.get("/v1/models", responses=_ERRORS)
async def list_models(
    holder: HolderDep,
    _: Annotated[Principal, Depends(authorized("models"))],
    model_type: Annotated[
        str | None, Query(max_length=64, description="Only models of this type (llm, embedding).")
    ] = None,
) -> dict[str, Any]:
    """Every model (or those of ``model_type``), with its provider; needs no Azure credential."""
    models = [m for m in await holder.models() if model_type in (None, m.model_type)]
    entra = holder.tokens is not None
    return {
        "object": "list",
        "data": [_openai_entry(model, entra) for model in models],
        "models": [_lightspeed_entry(model) for model in models],
    }


def _openai_entry(model: ModelInfo, entra: bool) -> dict[str, Any]:
    metadata = {
        "model_type": model.model_type,
        "provider_id": model.provider_id,
        "provider_resource_id": model.provider_resource_id,
    }
    return {
        "id": model.id,
        "object": "model",
        "created": 0,
        "owned_by": model.provider_id,
        "custom_metadata": metadata,
        **metadata,
        "entra_auth": model.azure and entra,
    }


def _lightspeed_entry(model: ModelInfo) -> dict[str, Any]:
    return {
        "identifier": model.id,
        "type": "model",
        "api_model_type": model.model_type,
        "model_type": model.model_type,
        "provider_id": model.provider_id,
        "provider_resource_id": model.provider_resource_id,
        "metadata": {},
    }

"""Probes and service information: ``/liveness``, ``/readiness``, ``/v1/info``.

Probes never rebuild anything and never need Entra ID: readiness reports whether Llama Stack
answers; the Entra state is in ``/v1/info``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import JSONResponse

from llama_entra.app.deps import HolderDep, authorized
from llama_entra.app.errors import error_body
from llama_entra.auth import Authenticator, Principal
from llama_entra.backends import package_version
from llama_entra.errors import LlamaEntraError

__all__ = ["router"]

router = APIRouter(tags=["health"])
_READINESS_TIMEOUT = 2.0


@router.get("/liveness")
async def liveness() -> dict[str, bool]:
    """The process serves requests."""
    return {"alive": True}


@router.get("/readiness")
async def readiness(holder: HolderDep) -> JSONResponse:
    """200 when Llama Stack answers (always, in library mode once started), else 503."""
    try:
        await holder.check_reachable(_READINESS_TIMEOUT)
    except LlamaEntraError as exc:
        return JSONResponse(error_body("Llama Stack unavailable", str(exc)), status_code=503)
    return JSONResponse({"ready": True, "reason": "Llama Stack answers"})


@router.get("/v1/info")
async def info(
    request: Request,
    holder: HolderDep,
    _: Annotated[Principal, Depends(authorized("info"))],
) -> dict[str, Any]:
    """Versions, mode, inbound auth module and Entra ID status (never a secret)."""
    authenticator: Authenticator = request.app.state.authenticator
    entra: dict[str, Any] | None = None
    if holder.tokens is not None:
        entra = {
            "identity": holder.tokens.identity,
            **holder.tokens.status().model_dump(mode="json"),
        }
    backend = holder.backend
    return {
        "name": "llama-entra",
        "version": package_version("llama-entra"),
        "backend": backend.name,
        "llama_stack_version": package_version(backend.package),
        "llama_stack_client_version": package_version(backend.client_package),
        "mode": holder.mode,
        "authentication": authenticator.module,
        "entra_id": entra,
        "azure_providers": holder.known_azure_bases(),
    }

"""Probes and service information: ``/liveness``, ``/readiness``, ``/v1/info``.

Probes never rebuild anything and never need Entra ID: readiness reports whether Llama Stack
answers (and, on a PostgreSQL run config in library mode, its database); the Entra state is in
``/v1/info``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import JSONResponse

from llama_entra.app.deps import HolderDep, authorized
from llama_entra.app.errors import status_and_body
from llama_entra.auth import Authenticator, Principal
from llama_entra.backends import package_version
from llama_entra.errors import LlamaEntraError
from llama_entra.stack import ClientHolder

__all__ = ["router"]

router = APIRouter(tags=["health"])
_READINESS_TIMEOUT = 2.0


@router.get("/liveness")
async def liveness() -> dict[str, bool]:
    """The process serves requests."""
    return {"alive": True}


@router.get("/readiness")
async def readiness(holder: HolderDep) -> JSONResponse:
    """200 when Llama Stack (and its database, if any) answers, else 503 saying which not."""
    try:
        await holder.check_reachable(_READINESS_TIMEOUT)
    except LlamaEntraError as exc:
        _, body, _ = status_and_body(exc)
        return JSONResponse(body, status_code=503)
    reason = "Llama Stack answers"
    if holder.database is not None:
        reason += f"; {holder.database.label} answers"
    return JSONResponse({"ready": True, "reason": reason})


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
        "database": _database(holder),
    }


def _database(holder: ClientHolder) -> dict[str, Any] | None:
    if holder.database is None:
        return None
    waiting = holder.waiting_for
    return {
        **holder.database.describe(),
        "llama_stack_started": holder.started,
        "last_error": waiting.cause if waiting is not None else None,
    }

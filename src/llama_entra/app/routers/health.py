"""Probes and service information: ``/liveness``, ``/readiness``, ``/v1/info``.

Field names follow lightspeed-stack (``alive``; ``ready``, ``reason``, ``overall_status``,
``impacts``, ``providers``; ``name`` from ``service.name``, ``service_version``,
``llama_stack_version``) with llama-entra's own additions to ``/v1/info``. Probes never
rebuild anything and never need Entra ID: readiness reports whether Llama Stack answers (and, on
a PostgreSQL run config in library mode, its database); the Entra state is in ``/v1/info`` and
on the status page.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from starlette.responses import JSONResponse

from llama_entra.app.deps import HolderDep, authorized
from llama_entra.app.errors import status_and_body
from llama_entra.auth import Authenticator, Principal
from llama_entra.backends import package_version
from llama_entra.errors import LlamaEntraError
from llama_entra.stack import ClientHolder

__all__ = ["router", "service_info"]

router = APIRouter(tags=["health"])
_READINESS_TIMEOUT = 2.0


class ProviderHealthStatus(BaseModel):
    """A provider that is not healthy, and why (``status``: ``ok``, ``error``, ...)."""

    provider_id: str
    status: str
    message: str | None = None


class ReadinessResponse(BaseModel):
    """Readiness in lightspeed-stack's fields.

    ``overall_status``: ``healthy`` (everything answers; Azure OpenAI resources of a model on
    several that cool down are listed, status ``cooling_down``, while the others take the
    calls), ``unhealthy`` (ready, but a provider reports a problem, e.g. Azure denying the
    identity, or every resource of a model cooling down), ``degraded`` (not ready: Llama Stack
    or its database does not answer). ``impacts`` names what callers cannot do meanwhile.
    """

    ready: bool
    reason: str
    overall_status: str
    impacts: list[str]
    providers: list[ProviderHealthStatus]


@router.get("/liveness")
async def liveness() -> dict[str, bool]:
    """The process serves requests."""
    return {"alive": True}


@router.get(
    "/readiness", response_model=ReadinessResponse, responses={503: {"model": ReadinessResponse}}
)
async def readiness(holder: HolderDep) -> JSONResponse:
    """200 when Llama Stack (and its database, if any) answers, else 503 saying which not.

    Azure refusing the identity (PermissionDenied) is listed under ``providers`` while it lasts.
    """
    try:
        await holder.check_reachable(_READINESS_TIMEOUT)
    except LlamaEntraError as exc:
        _, body, _ = status_and_body(exc)
        unhealthy = ProviderHealthStatus(
            provider_id="llama-stack", status="error", message=str(exc)
        )
        answer = ReadinessResponse(
            ready=False,
            reason=f"{body['detail']['response']}: providers not healthy: llama-stack",
            overall_status="degraded",
            impacts=["query", "streaming_query", "conversations", "chat", "responses"],
            providers=[unhealthy],
        )
        # lightspeed's fields, and ``detail`` as on every other 503 (what failed and why).
        return JSONResponse(answer.model_dump() | body, status_code=503)
    denied = holder.permission.denied
    if denied is not None:
        # Reported, not failed: every replica shares the identity, so a 503 would take them all
        # out of rotation for a role only an Azure admin can assign, and no call could then
        # show that it has been (the report clears at the first Azure call that succeeds).
        azure = ProviderHealthStatus(provider_id="azure", status="error", message=denied.message)
        answer = ReadinessResponse(
            ready=True,
            reason="Providers not healthy: azure",
            overall_status="unhealthy",
            impacts=["inference on Azure OpenAI models"],
            providers=[azure],
        )
        return JSONResponse(answer.model_dump())
    cooling = holder.resources.cooling()
    if cooling:
        # Ready: the calls go to the other resources, or wait for the soonest one.
        names = ", ".join(resource.provider_id for resource in cooling)
        answer = ReadinessResponse(
            ready=True,
            reason=f"Azure OpenAI resources cooling down: {names}",
            overall_status="unhealthy" if any(r.all_cooling for r in cooling) else "healthy",
            impacts=["calls go to the model's other Azure OpenAI resources"],
            providers=[
                ProviderHealthStatus(
                    provider_id=resource.provider_id,
                    status="cooling_down",
                    message=f"{resource.base_url}: no calls for {resource.seconds_left} s",
                )
                for resource in cooling
            ],
        )
        return JSONResponse(answer.model_dump())
    answer = ReadinessResponse(
        ready=True,
        reason="All providers are healthy",
        overall_status="healthy",
        impacts=[],
        providers=[],
    )
    return JSONResponse(answer.model_dump())


def service_info(request: Request, holder: ClientHolder) -> dict[str, Any]:
    """Versions, mode, inbound auth module and Entra ID status (never a secret)."""
    authenticator: Authenticator = request.app.state.authenticator
    entra: dict[str, Any] | None = None
    if holder.tokens is not None:
        entra = {
            "identity": holder.tokens.identity,
            **holder.tokens.status().model_dump(mode="json"),
            "user_identity": "service" if holder.users is None else "on_behalf_of",
        }
        if holder.users is not None:
            entra["cached_users"] = len(holder.users.cache)
    backend = holder.backend
    version = package_version("llama-entra")
    return {
        "name": request.app.state.config.service.name,
        "service_version": version,
        "version": version,
        "backend": backend.name,
        "llama_stack_version": package_version(backend.package),
        "llama_stack_client_version": package_version(backend.client_package),
        "mode": holder.mode,
        "authentication": authenticator.module,
        "entra_id": entra,
        "azure_providers": holder.known_azure_bases(),
        "azure_resources": holder.resources.states(),
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


@router.get("/v1/info")
async def info(
    request: Request,
    holder: HolderDep,
    _: Annotated[Principal, Depends(authorized("info"))],
) -> dict[str, Any]:
    """Versions, mode, inbound auth module and Entra ID status (never a secret)."""
    return service_info(request, holder)

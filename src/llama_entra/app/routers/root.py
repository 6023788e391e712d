"""``GET /``: a status page for a person (HTML; the same facts as ``/v1/info``, plus models)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import HTMLResponse

from llama_entra.app.deps import HolderDep, authorized
from llama_entra.app.routers.health import service_info
from llama_entra.app.status_page import render_status_page
from llama_entra.auth import Principal
from llama_entra.errors import LlamaEntraError
from llama_entra.stack import ModelInfo

__all__ = ["router"]

router = APIRouter(tags=["root"])


@router.get("/", response_class=HTMLResponse)
async def status_page(
    request: Request,
    holder: HolderDep,
    _: Annotated[Principal, Depends(authorized("info"))],
) -> HTMLResponse:
    """Versions, mode, inbound auth, the Entra token's state and the models."""
    models: list[ModelInfo] | None = None
    problem: str | None = None
    try:
        models = await holder.models()
    except LlamaEntraError as exc:
        problem = str(exc)
    page = render_status_page(service_info(request, holder), models, problem)
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})

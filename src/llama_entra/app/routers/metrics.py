"""``GET /metrics``: Prometheus text format (authentication configurable)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from llama_entra.app.metrics import ServiceMetrics
from llama_entra.auth import Authenticator

__all__ = ["router"]

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """The service's metrics; callers authenticate when ``metrics_require_auth`` is set."""
    if request.app.state.metrics_require_auth:
        authenticator: Authenticator = request.app.state.authenticator
        principal = await authenticator.authenticate(request)
        request.state.principal = principal.name
        authenticator.authorize(principal, "metrics")
    service_metrics: ServiceMetrics = request.app.state.metrics
    return Response(service_metrics.render(), media_type=CONTENT_TYPE_LATEST)

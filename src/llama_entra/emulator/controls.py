"""Test controls under ``/_emulator/``: counters, fault injection, token lifetime, revocation.

Unauthenticated on purpose: the emulator binds loopback and holds no real secret.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from llama_entra.emulator.entra import issue_federated_token
from llama_entra.emulator.state import EmulatorState

__all__ = ["control_routes"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FaultsRequest(_Body):
    """Fields to change; the others keep their value."""

    fail_token_requests: int | None = Field(None, ge=0)
    fail_status: int | None = Field(None, ge=400, le=599)
    delay_token_requests: int | None = Field(None, ge=0)
    delay_seconds: float | None = Field(None, ge=0, le=600)
    entra_down: bool | None = None
    stream_delay: float | None = Field(None, ge=0, le=60)
    first_chunk_delay: float | None = Field(None, ge=0, le=60)


class LifetimeRequest(_Body):
    """Lifetime of tokens issued from now on, and the optional ``refresh_in`` hint."""

    seconds: int = Field(ge=1)
    refresh_in: int | None = Field(None, ge=1)


class FederatedTokenRequest(_Body):
    """Subject of a service account token for workload identity."""

    subject: str = "system:serviceaccount:default:llama-entra"
    lifetime: int = Field(3600, ge=1)


def _state(request: Request) -> EmulatorState:
    state: EmulatorState = request.app.state.emulator
    return state


async def _parse[T: _Body](request: Request, model: type[T]) -> T | Response:
    try:
        return model.model_validate_json((await request.body()) or b"{}")
    except ValidationError as exc:
        return JSONResponse({"detail": exc.errors(include_url=False)}, status_code=422)


async def counters(request: Request) -> Response:
    """Requests seen since start-up or the last reset."""
    return JSONResponse(_state(request).counters())


async def reset(request: Request) -> Response:
    """Counters, faults and lifetime back to start-up values."""
    _state(request).reset()
    return JSONResponse({"reset": True})


async def faults(request: Request) -> Response:
    """Inject failures and delays."""
    parsed = await _parse(request, FaultsRequest)
    if isinstance(parsed, Response):
        return parsed
    current = _state(request).faults
    for name, value in parsed.model_dump(exclude_none=True).items():
        setattr(current, name, value)
    return JSONResponse(vars(current))


async def token_lifetime(request: Request) -> Response:
    """Set the lifetime (and ``refresh_in``) of tokens issued from now on."""
    parsed = await _parse(request, LifetimeRequest)
    if isinstance(parsed, Response):
        return parsed
    state = _state(request)
    state.token_lifetime, state.refresh_in = parsed.seconds, parsed.refresh_in
    return JSONResponse({"seconds": parsed.seconds, "refresh_in": parsed.refresh_in})


async def revoke(request: Request) -> Response:
    """Every token issued so far stops working (as after a key rotation or revocation)."""
    state = _state(request)
    revoked = len(state.tokens)
    state.tokens.clear()
    return JSONResponse({"revoked": revoked})


async def recent_requests(request: Request) -> Response:
    """Headers of the most recent Azure OpenAI requests, oldest first."""
    headers: list[dict[str, Any]] = list(_state(request).recent_headers)
    return JSONResponse(headers)


async def federated_token(request: Request) -> Response:
    """A service account token to put in ``AZURE_FEDERATED_TOKEN_FILE``."""
    parsed = await _parse(request, FederatedTokenRequest)
    if isinstance(parsed, Response):
        return parsed
    token = issue_federated_token(_state(request), parsed.subject, parsed.lifetime)
    return JSONResponse({"token": token})


def control_routes() -> list[Route]:
    """The ``/_emulator/`` routes."""
    return [
        Route("/_emulator/counters", counters),
        Route("/_emulator/reset", reset, methods=["POST"]),
        Route("/_emulator/faults", faults, methods=["POST"]),
        Route("/_emulator/token-lifetime", token_lifetime, methods=["POST"]),
        Route("/_emulator/revoke", revoke, methods=["POST"]),
        Route("/_emulator/requests", recent_requests),
        Route("/_emulator/federated-token", federated_token, methods=["POST"]),
    ]

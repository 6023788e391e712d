"""Test controls under ``/_emulator/``: counters, faults, tokens, quota, roles, the clock.

Unauthenticated on purpose: the emulator binds loopback and holds no real secret.

- ``GET counters``: requests seen, and ``azure_calls``: per deployment, calls by outcome
  (``ok``, ``throttled``, ``content_filter``, ``context_length_exceeded``,
  ``permission_denied``, ``unauthorized``, ``not_found``, ``error``).
- ``POST reset``: counters, faults, token lifetime, limits set at run time, rate-limit windows,
  role removals and the clock back to start-up values (issued tokens stay valid).
- ``POST faults``: token-request failures and delays, Entra down, stream pacing, and
  ``{"throttle_next": N, "throttle_retry_after": S, "throttle_model": M}``: the next N Azure
  OpenAI calls (of deployment M, or any) answer 429 with ``retry-after: S``.
- ``GET limits``, ``POST limits`` ``{"model": M, "rpm": N, "tpm": N, "context_window": N}``:
  a deployment's quota (``M``: ``MODEL``, or ``RESOURCE/MODEL`` on a named resource). Fields
  left out keep their value; ``rpm``/``tpm`` null is unlimited, ``context_window`` null the
  start-up value.
- ``GET roles``, ``POST roles`` ``{"object_id": ..., "assigned": false}``: role assignments.
- ``POST clock`` ``{"advance_seconds": S}``: move the emulator's time forward, until the next
  reset (tokens issued meanwhile carry that time in ``iat``/``nbf``/``exp``).
- ``POST token-lifetime``, ``POST revoke``, ``GET requests``, ``POST federated-token``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from llama_entra.emulator.entra import issue_federated_token
from llama_entra.emulator.limits import DeploymentLimits
from llama_entra.emulator.roles import ROLE_NAME, principals
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
    break_streams_after: int | None = Field(None, ge=0)
    throttle_next: int | None = Field(None, ge=0)
    throttle_retry_after: float | None = Field(None, ge=0, le=86_400)
    throttle_model: str | None = Field(None, min_length=1)


class LimitsRequest(_Body):
    """A deployment's quota; fields left out keep their value."""

    model: str
    rpm: int | None = Field(None, ge=0)
    tpm: int | None = Field(None, ge=0)
    context_window: int | None = Field(None, ge=1)


class RoleRequest(_Body):
    """Give or take the role of a principal."""

    object_id: str = Field(min_length=1)
    assigned: bool


class ClockRequest(_Body):
    """How far to move the emulator's time forward."""

    advance_seconds: float = Field(ge=0, le=30 * 86_400)


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
    if "throttle_next" in parsed.model_fields_set:  # a new throttle names its deployment anew
        current.throttle_model = parsed.throttle_model
    return JSONResponse(vars(current))


def _limits_view(state: EmulatorState) -> dict[str, Any]:
    now = state.clock()
    view: dict[str, Any] = {}
    # Every served deployment, and those of named resources that were given limits.
    for model in dict.fromkeys([*state.settings.models, *state.limits]):
        limits = state.limits_for(model)
        calls, tokens = state.window_for(model).usage(now)
        view[model] = {
            "rpm": limits.rpm,
            "tpm": limits.tpm,
            "context_window": limits.context_window,
            "window_requests": calls,
            "window_tokens": tokens,
        }
    return view


async def get_limits(request: Request) -> Response:
    """Each deployment's quota and what its current window holds."""
    return JSONResponse(_limits_view(_state(request)))


async def set_limits(request: Request) -> Response:
    """Change a deployment's quota (see the module docstring)."""
    parsed = await _parse(request, LimitsRequest)
    if isinstance(parsed, Response):
        return parsed
    state = _state(request)
    if not state.serves(parsed.model):
        return JSONResponse({"detail": f"no deployment named {parsed.model!r}"}, 404)
    current = state.limits_for(parsed.model)
    start = state.settings.deployment_limits.get(parsed.model) or DeploymentLimits()
    given = parsed.model_fields_set
    window = parsed.context_window or start.context_window
    state.limits[parsed.model] = DeploymentLimits(
        rpm=parsed.rpm if "rpm" in given else current.rpm,
        tpm=parsed.tpm if "tpm" in given else current.tpm,
        context_window=window if "context_window" in given else current.context_window,
    )
    return JSONResponse(_limits_view(state)[parsed.model])


def _roles_view(state: EmulatorState) -> dict[str, Any]:
    settings = state.settings
    clients = [*settings.clients, *settings.certificate_clients]
    return {
        "role": ROLE_NAME,
        "principals": principals(settings.tenant_id, clients, state.roles_removed),
        "removed": sorted(state.roles_removed),
    }


async def get_roles(request: Request) -> Response:
    """Registered clients, their object ids, and whether they hold the role."""
    return JSONResponse(_roles_view(_state(request)))


async def set_role(request: Request) -> Response:
    """Assign the role to a principal, or remove it."""
    parsed = await _parse(request, RoleRequest)
    if isinstance(parsed, Response):
        return parsed
    state = _state(request)
    if parsed.assigned:
        state.roles_removed.discard(parsed.object_id)
    else:
        state.roles_removed.add(parsed.object_id)
    return JSONResponse(_roles_view(state))


async def advance_clock(request: Request) -> Response:
    """Move the emulator's time forward."""
    parsed = await _parse(request, ClockRequest)
    if isinstance(parsed, Response):
        return parsed
    state = _state(request)
    state.advance_clock(parsed.advance_seconds)
    return JSONResponse({"now": state.clock()})


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
        Route("/_emulator/limits", get_limits, methods=["GET"]),
        Route("/_emulator/limits", set_limits, methods=["POST"]),
        Route("/_emulator/roles", get_roles, methods=["GET"]),
        Route("/_emulator/roles", set_role, methods=["POST"]),
        Route("/_emulator/clock", advance_clock, methods=["POST"]),
    ]

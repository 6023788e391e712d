"""Who may call the emulated Azure OpenAI: key or token, its audience, the principal's role.

Checked in Azure's order, each refusal with Azure's own body:

1. No credential: 401 ``{"error": {"code": "401", "message": "Access denied due to missing
   subscription key or token."}}``.
2. The static key (``api-key`` header or Bearer) is accepted as is: keys bypass RBAC.
3. A Bearer token the emulator did not issue, or that expired or was revoked, or whose ``aud``
   is not ``https://cognitiveservices.azure.com``: 401 ``{"statusCode": 401, "message":
   "Unauthorized. Access token is missing, invalid, audience is incorrect
   (https://cognitiveservices.azure.com), or have expired."}`` (no ``error`` wrapper).
4. A valid token whose principal (``oid``) lost its role (``roles``): 401 ``PermissionDenied``.

Every call with a valid token counts under the token's ``oid`` (``GET /_emulator/users``),
so tests see whose identity reached Azure. The ``unauthorized`` counter counts the refusals
of 1. and 3. (no credential, a token Azure rejects), not ``PermissionDenied``.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from llama_entra.emulator.roles import permission_denied_body
from llama_entra.emulator.state import EmulatorState

__all__ = ["COGNITIVE_SERVICES_AUDIENCE", "Refusal", "check_caller"]

COGNITIVE_SERVICES_AUDIENCE = "https://cognitiveservices.azure.com"
_ACCEPTED_AUDIENCES = frozenset({COGNITIVE_SERVICES_AUDIENCE, f"{COGNITIVE_SERVICES_AUDIENCE}/"})
_REFUSED_MESSAGE = (
    "Unauthorized. Access token is missing, invalid, audience is incorrect "
    "(https://cognitiveservices.azure.com), or have expired."
)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refused call: Azure's answer, and the outcome it counts as (one of ``OUTCOMES``)."""

    response: Response
    outcome: str


def _presented(request: Request) -> str:
    key = request.headers.get("api-key")
    bearer = request.headers.get("authorization", "")
    return key or (bearer[7:] if bearer.lower().startswith("bearer ") else "")


def check_caller(state: EmulatorState, request: Request) -> Refusal | None:
    """None when the caller may proceed, else Azure's refusal (see the module docstring)."""
    state.recent_headers.append(dict(request.headers))
    presented = _presented(request)
    if presented and state.is_static_key(presented):
        return None
    if not presented:
        state.unauthorized += 1
        body = {
            "error": {
                "code": "401",
                "message": "Access denied due to missing subscription key or token.",
            }
        }
        return Refusal(JSONResponse(body, status_code=401), "unauthorized")
    issued = state.token_for(presented)
    if issued is None or issued.audience not in _ACCEPTED_AUDIENCES:
        state.unauthorized += 1
        refused: dict[str, object] = {"statusCode": 401, "message": _REFUSED_MESSAGE}
        return Refusal(JSONResponse(refused, status_code=401), "unauthorized")
    state.users.azure_calls[issued.object_id] += 1
    if issued.object_id in state.roles_removed:
        return Refusal(JSONResponse(permission_denied_body(), status_code=401), "permission_denied")
    return None

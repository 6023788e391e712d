"""Users and Entra's on-behalf-of grant, for per-user identity (``user_identity: on_behalf_of``).

- ``POST /_emulator/user-token`` ``{"user": "alice", "audience": ..., "app_only": false,
  "lifetime": 3600, "scp": "user_impersonation"}``: an access token of test user ``alice``
  for the middle-tier app (audience: the first registered client id by default), signed with
  the key of the JWKS endpoint, with ``oid``, ``tid``, ``scp``, ``idtyp`` and
  ``preferred_username``. ``app_only``: an application's own token instead (no ``scp``,
  ``idtyp: app``). A negative ``lifetime`` gives an already expired token.
- ``POST /_emulator/consent`` ``{"user": "alice", "granted": false}``: revoke (or grant) the
  user's consent to the app's delegated permission.
- ``GET /_emulator/users``: exchanges per user, Azure calls per token ``oid``.
- The token endpoint's ``urn:ietf:params:oauth:grant-type:jwt-bearer`` grant with
  ``requested_token_use=on_behalf_of``: the app authenticates as for client credentials; the
  assertion must be a token this emulator signed, unexpired (else AADSTS500133), for the app
  (else AADSTS500131), a user's (else AADSTS7000114), whose user consented (else AADSTS65001
  with ``suberror: consent_required``). The token issued carries the user's ``oid``; the Azure
  side then applies that user's role assignment (``POST /_emulator/roles``).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any
from urllib.parse import parse_qs

import jwt
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from llama_entra.emulator.entra import (
    EntraError,
    apply_faults,
    authenticate_client,
    issue_access_token,
    signing_key_id,
    token,
)
from llama_entra.emulator.state import EmulatorState
from llama_entra.emulator.user_directory import user_object_id

__all__ = ["OBO_GRANT", "user_routes"]

OBO_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_DELEGATED_SCOPE = "user_impersonation"


class UserTokenRequest(BaseModel):
    """Whose token, for which audience, how long."""

    model_config = ConfigDict(extra="forbid")
    user: str = Field("alice", min_length=1, max_length=100)
    audience: str | None = None
    app_only: bool = False
    lifetime: int = Field(3600, ge=-86_400, le=86_400)
    scp: str = _DELEGATED_SCOPE


class ConsentRequest(BaseModel):
    """Grant or revoke a user's consent."""

    model_config = ConfigDict(extra="forbid")
    user: str = Field(min_length=1, max_length=100)
    granted: bool


class _ConsentRequiredError(EntraError):
    """AADSTS65001 with Entra's ``suberror``, which clients read to start a consent prompt."""

    def response(self) -> JSONResponse:
        body = json.loads(bytes(super().response().body))
        return JSONResponse({**body, "suberror": "consent_required"}, status_code=self.status)


def _state(request: Request) -> EmulatorState:
    state: EmulatorState = request.app.state.emulator
    return state


def _issuer(request: Request, state: EmulatorState) -> str:
    return f"{str(request.base_url).rstrip('/')}/{state.settings.tenant_id}/v2.0"


def _app_client_id(state: EmulatorState) -> str:
    return next(iter([*state.settings.clients, *state.settings.certificate_clients]))


async def user_token(request: Request) -> Response:
    """Mint an access token of a test user (or an app) for the middle-tier app."""
    try:
        asked = UserTokenRequest.model_validate_json(await request.body() or b"{}")
    except ValidationError as exc:
        return JSONResponse({"error": exc.errors(include_url=False)}, status_code=422)
    state = _state(request)
    tenant, now = state.settings.tenant_id, int(state.clock())
    object_id = user_object_id(tenant, asked.user)
    claims: dict[str, Any] = {
        "aud": asked.audience or _app_client_id(state),
        "iss": _issuer(request, state),
        "iat": now - 60 if asked.lifetime < 0 else now,
        "nbf": now - 60 if asked.lifetime < 0 else now,
        "exp": now + asked.lifetime,
        "oid": object_id,
        "sub": object_id,
        "tid": tenant,
        "ver": "2.0",
        "jti": uuid.uuid4().hex,
    }
    if asked.app_only:
        claims |= {"idtyp": "app", "azp": asked.user, "roles": ["llama-entra.app"]}
    else:
        claims |= {
            "idtyp": "user",
            "scp": asked.scp,
            "name": asked.user.title(),
            "preferred_username": f"{asked.user}@emulator.local",
        }
    signed = jwt.encode(
        claims, state.signing_key, algorithm="RS256", headers={"kid": signing_key_id}
    )
    return JSONResponse({"access_token": signed, "object_id": object_id, "tenant_id": tenant})


async def consent(request: Request) -> Response:
    """Grant or revoke a user's consent to the app's delegated permission."""
    try:
        asked = ConsentRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        return JSONResponse({"error": exc.errors(include_url=False)}, status_code=422)
    users = _state(request).users
    object_id = user_object_id(_state(request).settings.tenant_id, asked.user)
    if asked.granted:
        users.consent_revoked.discard(object_id)
    else:
        users.consent_revoked.add(object_id)
    return JSONResponse({"object_id": object_id, "granted": asked.granted})


async def users_view(request: Request) -> Response:
    """Exchanges per user and Azure calls per token ``oid``."""
    return JSONResponse(_state(request).users.view())


async def token_endpoint(request: Request) -> Response:
    """The v2 token endpoint: on-behalf-of here, every other grant in ``entra.token``."""
    form = {key: values[0] for key, values in parse_qs((await request.body()).decode()).items()}
    if form.get("grant_type") != OBO_GRANT or form.get("requested_token_use") != "on_behalf_of":
        return await token(request)
    state = _state(request)
    client_id = form.get("client_id", "")
    state.token_requests += 1
    state.token_requests_by_client[client_id or "-"] += 1
    tenant = request.path_params["tenant"]
    try:
        await apply_faults(state)
        if tenant != state.settings.tenant_id:
            raise EntraError(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
        authenticate_client(
            state, form, f"{str(request.base_url).rstrip('/')}/{tenant}/oauth2/v2.0/token"
        )
        user = _user_of(state, form.get("assertion", ""), client_id, _issuer(request, state))
    except EntraError as error:
        return error.response()
    state.users.exchanges[user] += 1
    return _issue(state, client_id, user, form.get("scope", ""))


def _user_of(state: EmulatorState, assertion: str, client_id: str, issuer: str) -> str:
    """The object id of the user ``assertion`` speaks for, or Entra's refusal."""
    try:
        claims = jwt.decode(
            assertion,
            state.signing_key.public_key(),
            algorithms=["RS256"],
            options={"verify_exp": False, "verify_aud": False, "require": ["exp", "oid"]},
        )
    except jwt.InvalidTokenError:
        raise EntraError(
            400, "invalid_grant", 50013, "Assertion failed signature validation."
        ) from None
    now = state.clock()
    if claims["exp"] <= now:
        expired = dt.datetime.fromtimestamp(claims["exp"], dt.UTC).strftime("%m/%d/%Y %H:%M:%S")
        current = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%m/%d/%Y %H:%M:%S")
        raise EntraError(
            400,
            "invalid_grant",
            500133,
            "Assertion is not within its valid time range. Ensure that the access token is not "
            "expired before using it for user assertion, or request a new token. Current time: "
            f"{current}, expiry time of assertion {expired}.",
        )
    if claims.get("aud") not in (client_id, f"api://{client_id}") or claims.get("iss") != issuer:
        raise EntraError(
            400,
            "invalid_grant",
            500131,
            "Assertion audience does not match the Client app presenting the assertion. The "
            f"audience in the assertion was '{claims.get('aud')}' and the expected audience is "
            f"'{client_id}' or one of the Application Id URIs of this application.",
        )
    if claims.get("idtyp") == "app" or not claims.get("scp"):
        raise EntraError(
            400,
            "invalid_grant",
            7000114,
            f"Application '{client_id}' is not allowed to make application on-behalf-of calls.",
        )
    user = str(claims["oid"])
    if user in state.users.consent_revoked:
        raise _ConsentRequiredError(
            400,
            "invalid_grant",
            65001,
            f"The user or administrator has not consented to use the application with ID "
            f"'{client_id}'. Send an interactive authorization request for this user and "
            "resource.",
        )
    return user


def _issue(state: EmulatorState, client_id: str, user: str, scope: str) -> Response:
    """An access token for ``scope``'s resource carrying ``user``'s identity."""
    audience = scope.removesuffix("/.default")
    signed, lifetime = issue_access_token(state, client_id, audience, user=user)
    body = {
        "token_type": "Bearer",
        "scope": f"{audience}/{_DELEGATED_SCOPE}",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": signed,
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


def user_routes() -> list[Route]:
    """The user controls and the token endpoint with the on-behalf-of grant (listed before
    ``entra_routes``, whose token endpoint it extends)."""
    return [
        Route("/_emulator/user-token", user_token, methods=["POST"]),
        Route("/_emulator/consent", consent, methods=["POST"]),
        Route("/_emulator/users", users_view),
        Route("/{tenant}/oauth2/v2.0/token", token_endpoint, methods=["POST"]),
    ]

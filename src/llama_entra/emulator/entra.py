"""The Entra ID half of the emulator: OpenID discovery, the v2 token endpoint, managed identity.

The token endpoint speaks the ``client_credentials`` grant the way Entra does: a client secret,
a certificate-signed ``client_assertion``, or a federated (workload identity) assertion. Errors
carry Entra's shape and AADSTS codes, so azure-identity and MSAL react as they would in Azure.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import uuid
from typing import Any
from urllib.parse import parse_qs

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from llama_entra.emulator.roles import SYSTEM_ASSIGNED, object_id_for
from llama_entra.emulator.state import EmulatorState, IssuedToken

__all__ = [
    "FEDERATED_AUDIENCE",
    "EntraError",
    "apply_faults",
    "authenticate_client",
    "entra_routes",
    "issue_federated_token",
    "signing_key_id",
]

FEDERATED_AUDIENCE = "api://AzureADTokenExchange"
_JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_ASSERTION_ALGORITHMS = ["RS256", "PS256"]
signing_key_id = "emulator-signing-key"


class EntraError(Exception):
    """An error answer of the token endpoint: HTTP status, OAuth error, AADSTS code and text."""

    def __init__(self, status: int, error: str, code: int, text: str) -> None:
        super().__init__(text)
        self.status, self.error, self.code, self.text = status, error, code, text

    def response(self) -> JSONResponse:
        trace, correlation = uuid.uuid4(), uuid.uuid4()
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        description = (
            f"AADSTS{self.code}: {self.text}\r\nTrace ID: {trace}\r\n"
            f"Correlation ID: {correlation}\r\nTimestamp: {now}"
        )
        body = {
            "error": self.error,
            "error_description": description,
            "error_codes": [self.code],
            "timestamp": now,
            "trace_id": str(trace),
            "correlation_id": str(correlation),
        }
        return JSONResponse(body, status_code=self.status)


def _state(request: Request) -> EmulatorState:
    state: EmulatorState = request.app.state.emulator
    return state


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


async def openid_configuration(request: Request) -> Response:
    """What MSAL reads before its first token request."""
    state, tenant = _state(request), request.path_params["tenant"]
    if state.faults.entra_down:
        return _unavailable().response()
    if tenant != state.settings.tenant_id:
        return _unknown_tenant(tenant).response()
    root = f"{_base(request)}/{tenant}"
    return JSONResponse(
        {
            "issuer": f"{root}/v2.0",
            "token_endpoint": f"{root}/oauth2/v2.0/token",
            "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
            "jwks_uri": f"{root}/discovery/v2.0/keys",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "emulator",
        }
    )


async def jwks(request: Request) -> Response:
    """The public key that signs access tokens (so ``jwk`` inbound auth can verify them)."""
    public = jwt.algorithms.RSAAlgorithm.to_jwk(_state(request).signing_key.public_key(), True)
    assert isinstance(public, dict)  # noqa: S101 - to_jwk(as_dict=True) always returns a dict
    return JSONResponse({"keys": [{**public, "kid": signing_key_id, "use": "sig"}]})


async def token(request: Request) -> Response:
    """``POST /{tenant}/oauth2/v2.0/token`` for the client_credentials grant."""
    state = _state(request)
    form = {key: values[0] for key, values in parse_qs((await request.body()).decode()).items()}
    client_id = form.get("client_id", "")
    state.token_requests += 1
    state.token_requests_by_client[client_id or "-"] += 1
    try:
        await apply_faults(state)
        tenant = request.path_params["tenant"]
        if tenant != state.settings.tenant_id:
            raise _unknown_tenant(tenant)
        if form.get("grant_type") != "client_credentials":
            raise EntraError(
                400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
            )
        scope = form.get("scope", "")
        if not scope.endswith("/.default"):
            raise EntraError(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows "
                "must have a scope value with /.default suffixed to the resource identifier.",
            )
        authenticate_client(state, form, f"{_base(request)}/{tenant}/oauth2/v2.0/token")
    except EntraError as error:
        return error.response()
    access_token, lifetime = issue_access_token(state, client_id, scope.removesuffix("/.default"))
    body: dict[str, Any] = {
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access_token,
    }
    if state.refresh_in is not None:
        body["refresh_in"] = state.refresh_in
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


async def managed_identity(request: Request) -> Response:
    """App Service style managed identity endpoint (``IDENTITY_ENDPOINT``/``IDENTITY_HEADER``)."""
    state = _state(request)
    client_id = request.query_params.get("client_id") or SYSTEM_ASSIGNED
    state.token_requests += 1
    state.token_requests_by_client[client_id] += 1
    try:
        await apply_faults(state)
    except EntraError as error:
        return error.response()
    header = request.headers.get("x-identity-header", "")
    if not secrets.compare_digest(header, state.settings.managed_identity_header):
        return JSONResponse({"statusCode": 401, "message": "Unauthorized"}, status_code=401)
    resource = request.query_params.get("resource")
    if not resource:
        return JSONResponse({"statusCode": 400, "message": "resource is required"}, 400)
    if client_id != SYSTEM_ASSIGNED and not _registered(state, client_id):
        return JSONResponse({"statusCode": 400, "message": "Identity not found"}, 400)
    access_token, lifetime = issue_access_token(state, client_id, resource)
    return JSONResponse(
        {
            "access_token": access_token,
            "expires_on": str(int(state.clock()) + lifetime),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": client_id,
        }
    )


def issue_access_token(
    state: EmulatorState, client_id: str, audience: str, *, user: str | None = None
) -> tuple[str, int]:
    """Sign a new access token (a JWT, like Entra's) and remember it as valid.

    ``aud`` is the resource of the requested scope (``https://cognitiveservices.azure.com``
    for Azure OpenAI's), ``oid`` the principal's object id (``roles.object_id_for``), or the
    object id ``user`` for a delegated token (on-behalf-of).
    """
    now = int(state.clock())
    lifetime = state.token_lifetime
    tenant = state.settings.tenant_id
    object_id = user or object_id_for(tenant, client_id)
    claims = {
        "aud": audience,
        "iss": f"https://sts.windows.net/{tenant}/",
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "appid": client_id,
        "azp": client_id,
        "oid": object_id,
        "sub": object_id,
        "tid": tenant,
        "roles": ["llama-entra.user"],
        "ver": "1.0",
        "jti": uuid.uuid4().hex,
    }
    if user is not None:
        claims |= {"idtyp": "user", "scp": "user_impersonation", "roles": []}
    signed = jwt.encode(
        claims, state.signing_key, algorithm="RS256", headers={"kid": signing_key_id}
    )
    state.remember(signed, IssuedToken(client_id, now + lifetime, audience, object_id))
    return signed, lifetime


def issue_federated_token(state: EmulatorState, subject: str, lifetime: int = 3600) -> str:
    """A Kubernetes-style service account token that the token endpoint accepts as assertion."""
    now = int(state.clock())
    claims = {
        "iss": "https://kubernetes.emulator.local",
        "sub": subject,
        "aud": FEDERATED_AUDIENCE,
        "iat": now,
        "exp": now + lifetime,
    }
    return jwt.encode(claims, state.signing_key, algorithm="RS256", headers={"kid": "k8s"})


async def apply_faults(state: EmulatorState) -> None:
    """Injected delays and failures of token requests (``POST /_emulator/faults``)."""
    faults = state.faults
    if faults.delay_token_requests > 0:
        faults.delay_token_requests -= 1
        await asyncio.sleep(faults.delay_seconds)
    if faults.entra_down:
        raise _unavailable()
    if faults.fail_token_requests > 0:
        faults.fail_token_requests -= 1
        raise EntraError(
            faults.fail_status, "temporarily_unavailable", 50196, "Injected failure (emulator)."
        )


def authenticate_client(state: EmulatorState, form: dict[str, str], endpoint: str) -> None:
    """The app's own client authentication (secret or assertion), or Entra's refusal."""
    client_id = form.get("client_id", "")
    if not _registered(state, client_id):
        raise EntraError(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory "
            f"'{state.settings.tenant_id}'.",
        )
    if "client_secret" in form:
        expected = state.settings.clients.get(client_id)
        if expected is None or not secrets.compare_digest(form["client_secret"], expected):
            raise EntraError(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request "
                f"is the client secret value, not the client secret ID, for a secret added to "
                f"app '{client_id}'.",
            )
        return
    if form.get("client_assertion_type") == _JWT_BEARER and "client_assertion" in form:
        _verify_assertion(state, client_id, form["client_assertion"], endpoint)
        return
    raise EntraError(
        401,
        "invalid_client",
        7000216,
        "'client_assertion', 'client_secret' or 'request' is required for the "
        "'client_credentials' grant type.",
    )


def _verify_assertion(state: EmulatorState, client_id: str, assertion: str, endpoint: str) -> None:
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.InvalidTokenError:
        raise _bad_assertion("Client assertion is not a valid JWT.") from None
    certificate = state.settings.certificate_clients.get(client_id)
    if "x5t" in header or "x5t#S256" in header:
        if certificate is None:
            raise _bad_assertion(f"No certificate is registered for app '{client_id}'.")
        try:
            claims = jwt.decode(
                assertion,
                certificate.public_key(),  # type: ignore[arg-type]
                algorithms=_ASSERTION_ALGORITHMS,
                audience=endpoint,
                options={"require": ["exp", "aud", "iss", "sub"]},
            )
        except jwt.InvalidTokenError as exc:
            raise _bad_assertion(f"Client assertion is invalid: {exc}.") from None
        if claims["iss"] != client_id or claims["sub"] != client_id:
            raise _bad_assertion("Client assertion issuer and subject must be the client id.")
        return
    try:
        jwt.decode(
            assertion,
            state.signing_key.public_key(),
            algorithms=["RS256"],
            audience=FEDERATED_AUDIENCE,
            options={"require": ["exp", "aud", "sub"]},
        )
    except jwt.InvalidTokenError:
        raise EntraError(
            400,
            "invalid_request",
            70021,
            "No matching federated identity record found for presented assertion.",
        ) from None


def _registered(state: EmulatorState, client_id: str) -> bool:
    settings = state.settings
    return client_id in settings.clients or client_id in settings.certificate_clients


def _bad_assertion(text: str) -> EntraError:
    return EntraError(401, "invalid_client", 700027, text)


def _unavailable() -> EntraError:
    return EntraError(503, "temporarily_unavailable", 90033, "Entra ID is unavailable (emulator).")


def _unknown_tenant(tenant: str) -> EntraError:
    return EntraError(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")


def entra_routes() -> list[Route]:
    """The Entra ID and managed identity routes."""
    return [
        Route("/{tenant}/v2.0/.well-known/openid-configuration", openid_configuration),
        Route("/{tenant}/discovery/v2.0/keys", jwks),
        Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"]),
        Route("/msi/token", managed_identity),
    ]

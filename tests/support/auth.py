"""Test helpers for inbound auth: RSA signing keys, a JWKS server, a custom auth endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from support.servers import run_uvicorn

__all__ = ["CustomEndpoint", "KeySet", "serve_custom_endpoint", "serve_jwks"]

ISSUER = "https://issuer.test/tenant/v2.0"
AUDIENCE = "api://llama-entra"


@dataclass
class KeySet:
    """Signing keys by kid; ``published`` lists the kids the JWKS shows."""

    keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    published: list[str] = field(default_factory=list)
    fetches: int = 0

    def add(self, kid: str, *, publish: bool = True) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if publish:
            self.published.append(kid)

    def jwks(self) -> dict[str, Any]:
        entries = []
        for kid in self.published:
            public = jwt.algorithms.RSAAlgorithm.to_jwk(self.keys[kid].public_key(), as_dict=True)
            entries.append({**public, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": entries}

    def token(self, kid: str = "k1", *, lifetime: int = 300, **claims: Any) -> str:
        """A signed token; a claim given as ``None`` is left out."""
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "iat": now, "exp": now + lifetime}
        body |= claims
        body = {name: value for name, value in body.items() if value is not None}
        return jwt.encode(body, self.keys[kid], algorithm="RS256", headers={"kid": kid})


@contextlib.contextmanager
def serve_jwks(key_set: KeySet) -> Iterator[str]:
    """Serve ``key_set`` as a JWKS; yields its URL."""

    async def keys(request: Request) -> Response:
        key_set.fetches += 1
        return JSONResponse(key_set.jwks())

    with run_uvicorn(Starlette(routes=[Route("/keys", keys)])) as url:
        yield f"{url}/keys"


@dataclass
class CustomEndpoint:
    """Allows ``good-*`` keys, is slow for ``slow`` and fails for ``boom``; records calls.

    ``good-models`` is allowed only for ``GET /models``, ``good-tenant`` only with
    ``X-Tenant: a``; ``good-nostore`` is allowed with ``Cache-Control: no-store``.
    """

    calls: list[dict[str, Any]] = field(default_factory=list)


@contextlib.contextmanager
def serve_custom_endpoint(endpoint: CustomEndpoint) -> Iterator[str]:
    """Run the custom auth endpoint; yields its URL."""

    async def decide(request: Request) -> Response:
        body = await request.json()
        endpoint.calls.append(body)
        key = body["api_key"]
        if key == "slow":
            await asyncio.sleep(2)
        if key == "boom":
            return JSONResponse({"error": "internal"}, status_code=500)
        context = body["request"]
        scoped = {
            "good-models": (context.get("method", "GET"), context["path"]) == ("GET", "/models"),
            "good-tenant": context["headers"].get("x-tenant") == "a",
        }
        if not scoped.get(key, True):
            return JSONResponse({"error": "not for this request"}, status_code=403)
        if key == "good-nostore":
            return JSONResponse(
                {"principal": key, "roles": ["reader"]}, headers={"Cache-Control": "no-store"}
            )
        if key.startswith("good"):
            roles = ["admin"] if key == "good-admin" else ["reader"]
            return JSONResponse({"principal": f"user-{key}", "roles": roles})
        return JSONResponse({"error": "denied"}, status_code=403)

    with run_uvicorn(Starlette(routes=[Route("/auth", decide, methods=["POST"])])) as url:
        yield f"{url}/auth"

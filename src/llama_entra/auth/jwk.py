"""``jwk``: JWT bearer tokens verified against a JSON Web Key Set (Entra ID, Keycloak, ...).

Keys are fetched with an async HTTP client (never blocking the event loop), cached for
``jwks_cache_seconds`` and fetched again when a token names an unknown ``kid`` (at most every
``unknown_kid_refetch_seconds``, so garbage tokens cannot make the service hammer the key
endpoint). PyJWT checks the signature with the configured asymmetric algorithms only
(``alg: none`` and HMAC never pass); ``exp`` is required, ``exp``, ``nbf`` and ``iat`` are
checked with the configured leeway (a token not yet valid, or issued in the future, is refused),
and ``iss`` and ``aud`` are required and checked unless the config explicitly opts out with
``allow_any_audience_and_issuer`` (logged as a warning when the authenticator is built).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
from starlette.requests import HTTPConnection

from llama_entra.auth.base import Action, Principal
from llama_entra.auth.bearer import bearer_credential
from llama_entra.auth.rules import Rules
from llama_entra.config import JwkAuthConfig
from llama_entra.errors import AuthUnavailableError, UnauthenticatedError

__all__ = ["JwkAuthenticator"]

logger = logging.getLogger(__name__)
_IDENTITY_CLAIMS = ("tid", "oid", "idtyp", "scp")


class JwkAuthenticator:
    """Validates ``Authorization: Bearer <JWT>`` and maps claims to a principal."""

    module = "jwk"

    def __init__(
        self,
        config: JwkAuthConfig,
        rules: Rules,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._rules = rules
        self._clock = clock
        unchecked = [
            name
            for name, unset in (
                ("issuer", config.issuer is None),
                ("audience", not config.audience),
            )
            if unset
        ]
        if unchecked:
            logger.warning(
                "jwk authentication does NOT check the token %s "
                "(allow_any_audience_and_issuer: true): any token signed by %s is accepted, "
                "including tokens minted for other applications",
                " or ".join(unchecked),
                config.jwks_url,
            )
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        verify: ssl.SSLContext | bool = True
        if config.ca_bundle is not None:
            verify = ssl.create_default_context(cafile=str(config.ca_bundle))
        self._client = httpx.AsyncClient(
            timeout=config.timeout_seconds, transport=transport, verify=verify
        )

    async def authenticate(self, connection: HTTPConnection) -> Principal:
        """The token's principal, or ``UnauthenticatedError`` saying what is wrong."""
        token = bearer_credential(connection)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise UnauthenticatedError("the bearer token is not a JWT") from None
        algorithm = header.get("alg")
        if algorithm not in self._config.algorithms:
            raise UnauthenticatedError(f"token algorithm {algorithm!r} is not accepted")
        key = await self._key(str(header.get("kid", "")))
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=self._config.algorithms,
                audience=self._config.audience or None,
                issuer=self._config.issuer,
                leeway=self._config.leeway_seconds,
                options={
                    "require": self._required,
                    "verify_exp": True,
                    "verify_nbf": True,
                    "verify_iat": True,
                    "verify_iss": self._config.issuer is not None,
                    "verify_aud": bool(self._config.audience),
                },
            )
        except jwt.ExpiredSignatureError:
            raise UnauthenticatedError("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise UnauthenticatedError(
                "the token is not valid yet (nbf or iat in the future)"
            ) from None
        except jwt.MissingRequiredClaimError as exc:
            raise UnauthenticatedError(f"the token has no {exc.claim!r} claim") from None
        except jwt.InvalidAudienceError:
            raise UnauthenticatedError("the token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise UnauthenticatedError("the token is from another issuer") from None
        except jwt.InvalidTokenError as exc:
            raise UnauthenticatedError(f"invalid token: {type(exc).__name__}") from None
        return self._principal(claims)

    @property
    def _required(self) -> list[str]:
        required = ["exp"]
        if self._config.issuer is not None:
            required.append("iss")
        if self._config.audience:
            required.append("aud")
        return required

    def authorize(self, principal: Principal, action: Action) -> None:
        """Apply the authorization rules."""
        self._rules.check(principal, action)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

    async def _key(self, kid: str) -> jwt.PyJWK:
        now = self._clock()
        stale = self._fetched_at is None or now - self._fetched_at > self._config.jwks_cache_seconds
        if stale or kid not in self._keys:
            async with self._lock:
                fetched = self._fetched_at
                recently = (
                    fetched is not None and now - fetched < self._config.unknown_kid_refetch_seconds
                )
                if stale or (kid not in self._keys and not recently):
                    await self._fetch()
        key = self._keys.get(kid)
        if key is None:
            raise UnauthenticatedError("the token was signed with an unknown key")
        return key

    async def _fetch(self) -> None:
        try:
            response = await self._client.get(self._config.jwks_url)
            response.raise_for_status()
            key_set = jwt.PyJWKSet.from_dict(response.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWKSetError) as exc:
            raise AuthUnavailableError(
                f"cannot fetch the signing keys ({type(exc).__name__})"
            ) from None
        self._keys = {str(key.key_id): key for key in key_set.keys if key.key_id}
        self._fetched_at = self._clock()
        logger.info("fetched %d signing keys from the JWKS", len(self._keys))

    def _principal(self, claims: dict[str, Any]) -> Principal:
        name = claims.get(self._config.principal_claim) or claims.get("sub") or "unknown"
        raw_roles = claims.get(self._config.roles_claim, [])
        if isinstance(raw_roles, str):
            roles = frozenset(raw_roles.split())
        elif isinstance(raw_roles, list):
            roles = frozenset(str(role) for role in raw_roles)
        else:
            roles = frozenset()
        # Entra's identity claims, for on-behalf-of (``llama_entra.identity``).
        attributes = {claim: str(claims[claim]) for claim in _IDENTITY_CLAIMS if claims.get(claim)}
        return Principal(name=str(name), roles=roles, attributes=attributes)

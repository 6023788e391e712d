"""The signed-in caller a request runs for, as on-behalf-of needs it.

``UserCaller`` is built from the claims of a token ``jwk`` inbound authentication already
validated (signature, issuer, audience, expiry): its tenant and object id key the per-user
token cache, so no caller can choose another's entry; the token itself is the assertion Entra
exchanges. ``bind_caller`` puts it in a context variable for the rest of the request (the
client holder reads it when it builds a call's provider data; tasks the request starts inherit
it), so no route has to pass it along.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass

from pydantic import SecretStr

from llama_entra.errors import UnauthenticatedError

__all__ = ["UserCaller", "bind_caller", "caller_from_claims", "current_caller"]

_current: ContextVar[UserCaller | None] = ContextVar("llama_entra_user_caller", default=None)


@dataclass(frozen=True, slots=True)
class UserCaller:
    """Who calls (tenant and object id), with the access token they called with."""

    tenant_id: str
    object_id: str
    assertion: SecretStr
    app_only: bool  # an application's own token: nothing to exchange on behalf of

    @property
    def key(self) -> tuple[str, str]:
        """The cache key: tenant and object id, both from validated claims."""
        return (self.tenant_id, self.object_id)


def caller_from_claims(claims: Mapping[str, object], token: str) -> UserCaller:
    """The caller of a validated token; ``UnauthenticatedError`` without ``tid`` or ``oid``.

    App-only: ``idtyp: app``, or no delegated scope (``scp``), as Entra marks app tokens.
    """
    tenant, object_id = claims.get("tid"), claims.get("oid")
    if not isinstance(tenant, str) or not isinstance(object_id, str) or not tenant or not object_id:
        raise UnauthenticatedError("the token has no 'tid' and 'oid' claims (not an Entra token)")
    app_only = claims.get("idtyp") == "app" or not claims.get("scp")
    return UserCaller(tenant, object_id, SecretStr(token), app_only)


def bind_caller(caller: UserCaller | None) -> None:
    """Make ``caller`` the current request's caller (its task and the tasks it starts)."""
    _current.set(caller)


def current_caller() -> UserCaller | None:
    """The current request's caller, if one was bound."""
    return _current.get()

"""What every inbound authentication module provides: a principal for a request, or an error.

An ``Authenticator`` looks at the request's headers (never its body) and returns the
``Principal`` making it, or raises ``UnauthenticatedError`` (401) / ``AuthUnavailableError``
(503). ``authorize`` then checks the principal may perform the ``Action`` (else
``ForbiddenError``, 403).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from starlette.requests import HTTPConnection

from llama_entra.config.auth import Action

__all__ = ["ANONYMOUS", "Action", "Authenticator", "NoopAuthenticator", "Principal"]


@dataclass(frozen=True)
class Principal:
    """Who makes a request: a name for logs, roles for authorization, extra attributes."""

    name: str
    roles: frozenset[str] = frozenset()
    attributes: dict[str, str] = field(default_factory=dict)


ANONYMOUS = Principal(name="anonymous")


class Authenticator(Protocol):
    """An inbound authentication module together with its authorization rules."""

    module: str

    async def authenticate(self, connection: HTTPConnection) -> Principal:
        """Return the caller's principal, or raise an ``AuthError``."""
        ...

    def authorize(self, principal: Principal, action: Action) -> None:
        """Return if ``principal`` may perform ``action``, else raise ``ForbiddenError``."""
        ...

    async def aclose(self) -> None:
        """Release clients and background work."""
        ...


class NoopAuthenticator:
    """Lets everyone in as ``anonymous``; for loopback-only deployments and development."""

    module = "noop"

    async def authenticate(self, connection: HTTPConnection) -> Principal:
        """Everyone is ``anonymous``."""
        return ANONYMOUS

    def authorize(self, principal: Principal, action: Action) -> None:
        """Every action is allowed."""

    async def aclose(self) -> None:
        """Nothing to release."""

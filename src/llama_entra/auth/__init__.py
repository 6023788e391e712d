"""Inbound authentication and authorization of callers.

``build_authenticator(config)`` returns the module named by ``authentication.module``;
the app keeps it on ``app.state.authenticator`` and calls it for every protected route.
"""

from __future__ import annotations

from llama_entra.auth.base import ANONYMOUS, Action, Authenticator, NoopAuthenticator, Principal
from llama_entra.config import AuthenticationConfig

__all__ = [
    "ANONYMOUS",
    "Action",
    "Authenticator",
    "NoopAuthenticator",
    "Principal",
    "build_authenticator",
]


def build_authenticator(config: AuthenticationConfig) -> Authenticator:
    """Build the authenticator ``config`` names."""
    if config.module == "noop":
        return NoopAuthenticator()
    raise NotImplementedError(f"authentication module {config.module} is not available yet")

"""Inbound authentication and authorization of callers.

``build_authenticator(config)`` returns the module named by ``authentication.module``
(``noop``, ``api_key``, ``custom``, ``jwk``) with the configured authorization rules; the app
keeps it on ``app.state.authenticator`` and calls it for every protected route.
"""

from __future__ import annotations

import ipaddress
import logging

from llama_entra.auth.base import ANONYMOUS, Action, Authenticator, NoopAuthenticator, Principal
from llama_entra.auth.rules import Rules
from llama_entra.config import AuthenticationConfig

__all__ = [
    "ANONYMOUS",
    "Action",
    "Authenticator",
    "NoopAuthenticator",
    "Principal",
    "Rules",
    "build_authenticator",
    "warn_if_exposed",
]

logger = logging.getLogger(__name__)


def build_authenticator(config: AuthenticationConfig) -> Authenticator:
    """Build the authenticator ``config`` names."""
    rules = Rules(config.rules)
    match config.module:
        case "api_key" if config.api_key is not None:
            from llama_entra.auth.api_key import ApiKeyAuthenticator

            return ApiKeyAuthenticator(config.api_key, rules)
        case "custom" if config.custom is not None:
            from llama_entra.auth.custom import CustomAuthenticator

            return CustomAuthenticator(config.custom, rules)
        case "jwk" if config.jwk is not None:
            from llama_entra.auth.jwk import JwkAuthenticator

            return JwkAuthenticator(config.jwk, rules)
        case _:
            return NoopAuthenticator()


def warn_if_exposed(config: AuthenticationConfig, host: str) -> bool:
    """Log a warning (and return True) when ``noop`` serves a non-loopback address."""
    if config.module != "noop":
        return False
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        logger.warning(
            "authentication is 'noop' on %s: anyone who can reach it spends the Azure quota; "
            "configure api_key, custom or jwk",
            host,
        )
    return not loopback

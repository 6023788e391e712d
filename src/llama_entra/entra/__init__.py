"""Entra ID tokens for Azure OpenAI: credentials from config and the token manager.

``create_token_manager(config)`` gives a ``TokenManager`` whose ``await token()`` returns a
valid access token, fetched lazily and refreshed ahead of expiry; ``TokenManagerRegistry``
keeps one manager per identity. Failures are ``TokenUnavailableError`` /
``TokenRejectedError`` from ``llama_entra.errors``, with a cause safe to show.
"""

from llama_entra.entra.credentials import (
    ResolvedIdentity,
    ThreadedCredential,
    TokenSource,
    build_credential,
    resolve_identity,
)
from llama_entra.entra.manager import Backoff, CredentialFactory, TokenManager, create_token_manager
from llama_entra.entra.registry import IdentityKey, TokenManagerRegistry, identity_key
from llama_entra.entra.status import TokenStatus
from llama_entra.entra.translate import translate_error

__all__ = [
    "Backoff",
    "CredentialFactory",
    "IdentityKey",
    "ResolvedIdentity",
    "ThreadedCredential",
    "TokenManager",
    "TokenManagerRegistry",
    "TokenSource",
    "TokenStatus",
    "build_credential",
    "create_token_manager",
    "identity_key",
    "resolve_identity",
    "translate_error",
]

"""Azure's ``PermissionDenied`` (no role on the resource), told apart from a stale token.

Azure OpenAI answers 401 both for a token it no longer accepts (expired, revoked: one fresh
token fixes it) and, with the code ``PermissionDenied``, for a valid token whose principal has
no role assignment on the resource. A fresh token carries the same principal, so that answer
costs no token refresh and no Entra call: ``PermissionWatch`` turns it into
``AzurePermissionError`` naming the principal's object id (the token's ``oid`` claim, see
``entra.claims``), remembers it for
``/readiness`` until an Azure call succeeds, and counts it for ``/metrics``.
"""

from __future__ import annotations

import logging

from llama_entra.entra.claims import principal_of
from llama_entra.errors import AzurePermissionError, LlamaEntraError, UpstreamError

__all__ = ["PermissionWatch", "is_permission_denied"]

logger = logging.getLogger(__name__)


def is_permission_denied(exc: LlamaEntraError) -> bool:
    """Azure (through Llama Stack) said the identity lacks a role on the resource."""
    return isinstance(exc, UpstreamError) and exc.code == "PermissionDenied"


class PermissionWatch:
    """The last ``PermissionDenied`` seen, until an Azure call succeeds; and how many."""

    def __init__(self) -> None:
        self.denied: AzurePermissionError | None = None
        self.count = 0

    def refused(self, token: str | None) -> AzurePermissionError:
        """Record a ``PermissionDenied`` for the call that sent ``token``; the error to raise."""
        error = AzurePermissionError(principal_of(token))
        if self.denied is None:
            logger.error("%s", error.message)
        self.denied = error
        self.count += 1
        return error

    def succeeded(self) -> None:
        """An Azure call went through: the role is there (again)."""
        if self.denied is not None:
            logger.info("Azure OpenAI accepts the identity again")
            self.denied = None

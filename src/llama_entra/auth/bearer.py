"""Read the caller's bearer credential from ``Authorization`` (never logged, never echoed)."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from llama_entra.errors import UnauthenticatedError

__all__ = ["bearer_credential"]


def bearer_credential(connection: HTTPConnection) -> str:
    """The credential after ``Bearer``; ``UnauthenticatedError`` when missing or malformed."""
    header = connection.headers.get("authorization")
    if header is None:
        raise UnauthenticatedError("missing credential: send 'Authorization: Bearer <credential>'")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise UnauthenticatedError("malformed Authorization header: expected 'Bearer <credential>'")
    return credential.strip()

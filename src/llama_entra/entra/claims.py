"""What an Entra access token says about its principal, read without verifying it.

Only to name things to an operator (whom to assign a role to): never to decide access. The
token came from Entra through azure-identity, over TLS; its signature is Azure's to check.
"""

from __future__ import annotations

import jwt

__all__ = ["principal_of"]


def principal_of(token: str | None) -> str | None:
    """The ``oid`` claim (object id) of an access token, or None when it has none or is no JWT."""
    if not token:
        return None
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    object_id = claims.get("oid")
    return str(object_id) if object_id else None

"""Conversation ids as lightspeed-stack clients send them, mapped to Llama Stack's.

Llama Stack names a conversation ``conv_`` + 48 lowercase hex digits. lightspeed-stack clients
also send the same id without the prefix, and UUIDs (its older conversations). A UUID is a valid
id that no Llama Stack conversation can have, so it is unknown (404), never malformed (422).
Anything else is malformed, and no call reaches Llama Stack or Azure for it.
"""

from __future__ import annotations

import re
import secrets
import uuid

from llama_entra.errors import InvalidInputError

__all__ = ["llama_stack_id", "new_conversation_id", "valid_conversation_id"]

_HEX48 = re.compile(r"^(conv_)?([0-9a-fA-F]{48})$")


def new_conversation_id() -> str:
    """A fresh id in Llama Stack's own format (``conv_`` + 24 random bytes as hex)."""
    return f"conv_{secrets.token_bytes(24).hex()}"


def valid_conversation_id(raw: str) -> bool:
    """True for ``conv_`` + 48 hex, 48 hex, or a UUID."""
    if _HEX48.match(raw):
        return True
    try:
        uuid.UUID(raw)
    except ValueError:
        return False
    return len(raw) in (32, 36)  # uuid.UUID also takes braces and a urn: prefix


def llama_stack_id(raw: str, *, in_path: bool = False) -> str | None:
    """The Llama Stack id for ``raw`` (None for a UUID: valid, but never in the store).

    A malformed id raises ``InvalidInputError``: 422 in a request body (lightspeed's
    validation), 400 in a URL path (lightspeed's "Invalid conversation ID format").
    """
    match = _HEX48.match(raw)
    if match:
        return f"conv_{match.group(2).lower()}"
    if valid_conversation_id(raw):
        return None
    if in_path:
        raise InvalidInputError(
            "Invalid conversation ID format",
            f"The conversation ID {raw[:100]} has invalid format.",
            status=400,
        )
    raise InvalidInputError("Invalid request", f"Improper conversation ID '{raw[:100]}'")

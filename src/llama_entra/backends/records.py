"""Read the objects either client returns into backend-neutral records and JSON.

Both clients model the same OpenAI-shaped schema with pydantic, with different class names;
these helpers read them by attribute, so they serve both.
"""

from __future__ import annotations

from typing import Any

from llama_entra.backends.base import JSON, ConversationMessage, ListedModel

__all__ = ["listed_model", "message_of", "to_json"]

_ROLES = frozenset({"user", "assistant", "system", "developer"})


def to_json(obj: Any) -> JSON:
    """``obj`` as a JSON-ready dict, without the fields the server did not send."""
    if isinstance(obj, dict):
        return obj
    dumped: JSON = obj.model_dump(mode="json", exclude_unset=True)
    return dumped


def listed_model(model: Any) -> ListedModel:
    """A model from ``models.list()`` (OpenAI shape, Llama Stack's ``custom_metadata``)."""
    metadata = getattr(model, "custom_metadata", None) or {}
    model_id = str(model.id)
    return ListedModel(
        id=model_id,
        provider_id=str(metadata.get("provider_id") or getattr(model, "owned_by", "") or ""),
        provider_resource_id=str(
            metadata.get("provider_resource_id") or model_id.split("/", 1)[-1]
        ),
        model_type=str(metadata.get("model_type") or "llm"),
    )


def message_of(item: Any) -> ConversationMessage | None:
    """A conversation item as a message, or None for items that are not chat messages."""
    if getattr(item, "type", None) != "message":
        return None
    role = str(getattr(item, "role", ""))
    if role not in _ROLES:
        return None
    return ConversationMessage(role=role, text=_text(getattr(item, "content", "")))


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(getattr(part, "text", "") or "") for part in content)
    actual = getattr(content, "actual_instance", None)  # ogx-client's oneOf wrapper
    return _text(actual) if actual is not None else ""

"""Read the objects either client returns into backend-neutral records and JSON.

Both clients model the same OpenAI-shaped schema with pydantic, with different class names;
these helpers read them by attribute, so they serve both.
"""

from __future__ import annotations

from typing import Any

from llama_entra.backends.base import JSON, ConversationRecord, ListedModel

__all__ = ["conversation_record", "listed_model", "to_json"]


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


def conversation_record(conversation: Any) -> ConversationRecord:
    """A conversation object of either client as a record (metadata values as strings)."""
    metadata = getattr(conversation, "metadata", None) or {}
    return ConversationRecord(
        id=str(conversation.id),
        created_at=int(getattr(conversation, "created_at", 0) or 0),
        metadata={str(key): str(value) for key, value in dict(metadata).items()},
    )

"""Conversation history in Llama Stack's own conversation store.

``/v1/query`` keeps each turn (user question, model answer) as items of a Llama Stack
conversation, so history survives restarts (it lives in the run config's store) and the same
conversation can be continued through the Responses API.
"""

from __future__ import annotations

from typing import Any

from llama_entra.stack import ClientHolder

__all__ = ["create_conversation", "load_history", "record_turn"]


async def create_conversation(holder: ClientHolder) -> str:
    """A new, empty conversation; returns its id."""
    try:
        conversation = await holder.client.conversations.create()
    except Exception as exc:
        raise holder.translate(exc) from exc
    return str(conversation.id)


async def load_history(holder: ClientHolder, conversation_id: str) -> list[dict[str, str]]:
    """The conversation's messages, oldest first, as chat messages (404 if unknown)."""
    messages: list[dict[str, str]] = []
    try:
        async for item in holder.client.conversations.items.list(conversation_id, order="asc"):
            if getattr(item, "type", None) != "message":
                continue
            role = str(getattr(item, "role", ""))
            if role in ("user", "assistant", "system", "developer"):
                messages.append({"role": role, "content": _text(getattr(item, "content", ""))})
    except Exception as exc:
        raise holder.translate(exc) from exc
    return messages


async def record_turn(
    holder: ClientHolder, conversation_id: str, question: str, answer: str
) -> None:
    """Append the user's question and the model's answer to the conversation."""
    items: list[Any] = [
        {"type": "message", "role": "user", "content": question},
        {"type": "message", "role": "assistant", "content": answer},
    ]
    try:
        await holder.client.conversations.items.create(conversation_id, items=items)
    except Exception as exc:
        raise holder.translate(exc) from exc


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(getattr(part, "text", "") or "") for part in content)
    return ""

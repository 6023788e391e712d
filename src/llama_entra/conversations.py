"""Conversation history in Llama Stack's own conversation store.

``/v1/query`` keeps each turn (user question, model answer) as items of a Llama Stack
conversation, so history survives restarts (it lives in the run config's store) and the same
conversation can be continued through the Responses API.
"""

from __future__ import annotations

from llama_entra.backends import StackClient

__all__ = ["load_history", "record_turn"]


async def load_history(client: StackClient, conversation_id: str) -> list[dict[str, str]]:
    """The conversation's messages, oldest first, as chat messages (404 if unknown)."""
    messages = await client.conversation_messages(conversation_id)
    return [{"role": message.role, "content": message.text} for message in messages]


async def record_turn(
    client: StackClient, conversation_id: str, question: str, answer: str
) -> None:
    """Append the user's question and the model's answer to the conversation (one call)."""
    await client.add_conversation_items(
        conversation_id,
        [
            {"type": "message", "role": "user", "content": question},
            {"type": "message", "role": "assistant", "content": answer},
        ],
    )

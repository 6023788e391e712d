"""One question-and-answer turn of ``/v1/query`` and ``/v1/streaming_query``.

``prepare`` resolves the model and the caller's conversation and builds the chat messages
(system prompt, history, the question with its attachments); ``finish`` records the turn in the
conversation (creating it for a first question, so a failed first call leaves nothing behind)
and, for a new conversation that asks for it, schedules a topic summary like lightspeed-stack's
(made after the answer is sent).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from llama_entra.app.schemas import QueryRequest
from llama_entra.conversations import ConversationStore
from llama_entra.conversations.history_cache import CachedHistory
from llama_entra.conversations.index import IndexedTurn
from llama_entra.conversations.topics import TopicSummarizer
from llama_entra.errors import LlamaEntraError
from llama_entra.stack import ClientHolder, ModelInfo

__all__ = [
    "CONTENT_FILTERED",
    "PreparedTurn",
    "answer_text",
    "content_filtered",
    "conversation_of",
    "discard",
    "finish",
    "prepare",
    "usage_tokens",
]

logger = logging.getLogger(__name__)
# Azure's finish_reason when its content filter cut the completion.
CONTENT_FILTERED = "content_filter"


@dataclass
class PreparedTurn:
    """What a turn needs before and after the model answers."""

    body: QueryRequest
    owner: str
    model: ModelInfo
    conversation_id: str | None
    messages: list[dict[str, Any]]
    started_at: float = field(default_factory=time.time)
    new: bool = False
    unwritten: bool = False  # the id is reserved; the conversation is written with the turn
    seen: CachedHistory | None = None  # the cached history this turn continues


async def prepare(
    holder: ClientHolder, store: ConversationStore, body: QueryRequest, owner: str
) -> PreparedTurn:
    """Model, conversation (404 if unknown or another caller's) and messages for ``body``."""
    model = await holder.resolve_model(body.model, body.provider)
    opened = None
    if body.conversation_id:
        opened = await store.open_with_history(body.conversation_id, owner)
    history = opened.history if opened else []
    system = [{"role": "system", "content": body.system_prompt}] if body.system_prompt else []
    question = {"role": "user", "content": _question_content(body)}
    return PreparedTurn(
        body,
        owner,
        model,
        opened.conversation_id if opened else None,
        [*system, *history, question],
        seen=opened.seen if opened else None,
    )


def _question_content(body: QueryRequest) -> str | list[dict[str, Any]]:
    """The question's text, or its text and images as content parts (the model's image input).

    Images go to the model with this question only: the conversation keeps the question's text
    and each image's label, so a later turn knows an image was there but not what it showed.
    """
    images = body.images()
    if not images:
        return body.prompt()
    text: list[dict[str, Any]] = [{"type": "text", "text": body.prompt()}]
    return text + [
        {"type": "image_url", "image_url": {"url": image.data_url()}} for image in images
    ]


async def conversation_of(store: ConversationStore, turn: PreparedTurn) -> str:
    """The turn's conversation id, for a first question before it is answered.

    Where the store takes ids from llama-entra (library mode) the id is only reserved: the
    conversation is written with its first turn, so an answer that fails or is abandoned
    leaves nothing behind. Elsewhere the conversation is created now (and ``discard`` deletes
    it if the answer fails).
    """
    if turn.conversation_id is None:
        reserved = store.reserve_id()
        if reserved is not None:
            turn.conversation_id, turn.new, turn.unwritten = reserved, True, True
            return reserved
        opened = await store.create(turn.owner)
        turn.conversation_id, turn.seen, turn.new = opened.conversation_id, opened.seen, True
    return turn.conversation_id


async def discard(store: ConversationStore, turn: PreparedTurn) -> None:
    """Best effort: delete the conversation made for a first question whose answer failed."""
    if not turn.new or turn.conversation_id is None or turn.unwritten:
        return
    try:
        await store.delete(turn.conversation_id)
    except LlamaEntraError as exc:
        logger.warning("could not delete the empty conversation %s: %s", turn.conversation_id, exc)


async def finish(
    summaries: TopicSummarizer, store: ConversationStore, turn: PreparedTurn, answer: str
) -> str:
    """Record the turn; summarise a new conversation's topic when asked. Its conversation id.

    A first question whose conversation is not written yet (``/v1/query``; a reserved id)
    creates it with the turn in one call, so the store never holds a conversation without its
    first turn. The topic summary is made after the answer is sent (``TopicSummarizer``).
    """
    new = turn.conversation_id is None or turn.new
    indexed = IndexedTurn(
        model=turn.model.own_id,
        provider=turn.model.provider_id,
        started_at=turn.started_at,
        completed_at=time.time(),
    )
    question = turn.body.prompt()
    if turn.conversation_id is None or turn.unwritten:
        turn.conversation_id = await store.create_with_turn(
            turn.owner, question, answer, indexed, turn.conversation_id
        )
        turn.unwritten = False
    else:
        await store.record_turn(turn.conversation_id, question, answer, indexed, turn.seen)
    conversation_id = turn.conversation_id
    if new and turn.body.generate_topic_summary is not False:
        summaries.schedule(turn.model, turn.body.query, conversation_id)
    return conversation_id


def answer_text(completion: dict[str, Any]) -> str:
    """The text of a chat completion's first choice."""
    choices = completion.get("choices") or []
    return str((choices[0].get("message") or {}).get("content") or "") if choices else ""


def content_filtered(completion: dict[str, Any]) -> bool:
    """Whether Azure's content filter cut the completion (its first choice)."""
    choices = completion.get("choices") or []
    return bool(choices) and choices[0].get("finish_reason") == CONTENT_FILTERED


def usage_tokens(usage: Any) -> tuple[int, int]:
    """Prompt and completion token counts of an OpenAI ``usage`` object (0 when absent)."""
    if not isinstance(usage, dict):
        return 0, 0
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)

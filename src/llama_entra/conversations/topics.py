"""Topic summaries of new conversations, made after the answer has been sent.

lightspeed-stack summarises the first question of a new conversation (``generate_topic_summary``,
on by default) with a second model call, and the conversations API lists the summary. The
answer does not contain it, so nothing makes the caller wait for it: ``schedule`` returns at
once and the summary is made in the background.

At most ``concurrency`` summaries call the model at a time and at most ``backlog`` are
pending; beyond that a summary is dropped and the log says for which conversation. A failed
summary is logged, never raised (the question was answered). ``aclose(drain_seconds)`` at
shutdown lets pending summaries finish within the drain limit, then cancels the rest and logs
which conversations got none; ``schedule`` after that logs and drops.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from llama_entra.conversations.store import ConversationStore
from llama_entra.errors import LlamaEntraError
from llama_entra.stack import ClientHolder, ModelInfo

__all__ = ["TOPIC_PROMPT", "TopicSummarizer"]

logger = logging.getLogger(__name__)
TOPIC_PROMPT = (
    "Give a short topic summary (at most ten words, no punctuation at the end) of the "
    "conversation that starts with the user's message below. Answer with the summary only."
)
_MAX_SUMMARY_CHARS = 1000


class TopicSummarizer:
    """Summarises new conversations' topics in the background (see the module docstring)."""

    def __init__(
        self,
        holder: ClientHolder,
        store: ConversationStore,
        *,
        concurrency: int = 4,
        backlog: int = 256,
    ) -> None:
        self._holder = holder
        self._store = store
        self._slots = asyncio.Semaphore(concurrency)
        self._backlog = backlog
        self._pending: dict[asyncio.Task[None], str] = {}  # strong references, by conversation
        self._closed = False

    @property
    def pending(self) -> int:
        """Summaries scheduled and not finished yet."""
        return len(self._pending)

    def schedule(self, model: ModelInfo, question: str, conversation_id: str) -> None:
        """Summarise ``conversation_id``'s topic from its first ``question``, later."""
        if self._closed:
            logger.warning("no topic summary for %s: the service is stopping", conversation_id)
            return
        if len(self._pending) >= self._backlog:
            logger.warning(
                "no topic summary for %s: %d summaries already pending",
                conversation_id,
                len(self._pending),
            )
            return
        task = asyncio.create_task(
            self._summarise(model, question, conversation_id),
            name=f"topic summary {conversation_id}",
        )
        self._pending[task] = conversation_id
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._pending.pop(task, None)

    async def _summarise(self, model: ModelInfo, question: str, conversation_id: str) -> None:
        messages = [
            {"role": "system", "content": TOPIC_PROMPT},
            {"role": "user", "content": question},
        ]
        async with self._slots:
            try:
                completion = await self._holder.chat(model, {"messages": messages})
                summary = _text(completion).strip()[:_MAX_SUMMARY_CHARS]
                if summary:
                    await self._store.set_topic(conversation_id, summary)
            except LlamaEntraError as exc:
                logger.warning("no topic summary for %s: %s", conversation_id, exc)
            except Exception:
                logger.exception("no topic summary for %s: unexpected error", conversation_id)

    async def aclose(self, drain_seconds: float) -> None:
        """Let pending summaries finish within ``drain_seconds``; cancel and name the rest."""
        self._closed = True
        pending = dict(self._pending)
        if not pending:
            return
        logger.info(
            "finishing %d topic summaries (up to %.1f s): %s",
            len(pending),
            drain_seconds,
            ", ".join(sorted(pending.values())),
        )
        _, late = await asyncio.wait(pending, timeout=drain_seconds)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        if late:
            logger.warning(
                "dropped %d topic summaries at shutdown (drain limit %.1f s): %s",
                len(late),
                drain_seconds,
                ", ".join(sorted(pending[task] for task in late)),
            )
        finished = sorted(pending[task] for task in pending if task not in late)
        if finished:
            logger.info("finished topic summaries at shutdown: %s", ", ".join(finished))


def _text(completion: dict[str, Any]) -> str:
    choices = completion.get("choices") or []
    return str((choices[0].get("message") or {}).get("content") or "") if choices else ""

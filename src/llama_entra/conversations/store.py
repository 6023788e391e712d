"""Conversations of the lightspeed routes: Llama Stack's conversation store, scoped per caller.

``/v1/query`` keeps each turn (question, answer) as items of a Llama Stack conversation, so
history survives restarts and the same conversation can be continued through the Responses API.
Each conversation llama-entra creates carries its owner (the caller's principal) in its
Llama Stack metadata; a caller asking for another caller's conversation gets the same 404 as for
one that does not exist. The ``ConversationIndex`` remembers which conversations each owner has
(Llama Stack cannot list them) and per-turn model and times.

Turns are rebuilt from the items by pairing each assistant message with the oldest question
still unanswered: llama-stack 0.7.3 orders items by a per-second timestamp, so two turns
recorded within one second can come back interleaved.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from llama_entra.backends import StackClient
from llama_entra.backends.conversation_ids import llama_stack_id, new_conversation_id
from llama_entra.conversations.history_cache import CachedHistory, HistoryCache
from llama_entra.conversations.index import ConversationIndex, IndexedConversation, IndexedTurn
from llama_entra.errors import ConversationNotFoundError, NotFoundError
from llama_entra.stack.holder import ClientHolder

__all__ = ["OWNER_KEY", "ConversationStore", "Opened", "Turn", "iso", "turns_of"]

OWNER_KEY = "llama_entra_owner"
JSON = dict[str, Any]


def iso(seconds: float) -> str:
    """Unix seconds as an ISO 8601 UTC timestamp."""
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Turn:
    """One question and what answered it (tool calls and results included)."""

    messages: list[JSON] = field(default_factory=list)
    tool_calls: list[JSON] = field(default_factory=list)
    tool_results: list[JSON] = field(default_factory=list)
    answered: bool = False


class ConversationStore:
    """Creates, finds, lists and deletes a caller's conversations."""

    def __init__(
        self, holder: ClientHolder, index: ConversationIndex, cache: HistoryCache | None = None
    ) -> None:
        self._holder = holder
        self.index = index
        self.cache = cache if cache is not None else HistoryCache()

    @property
    def client(self) -> StackClient:
        """The holder's current client (Llama Stack may restart after a database outage)."""
        return self._holder.client

    async def create(self, owner: str) -> Opened:
        """A new, empty conversation owned by ``owner``."""
        conversation_id = await self.client.create_conversation({OWNER_KEY: owner})
        await self.index.add(conversation_id, owner, time.time())
        return Opened(conversation_id, [], None)

    def reserve_id(self) -> str | None:
        """An id for a conversation to be written later with its first turn, where the client
        takes ids from the caller (library mode); else None (create it now instead)."""
        return new_conversation_id() if self.client.chooses_conversation_ids else None

    async def create_with_turn(
        self,
        owner: str,
        question: str,
        answer: str,
        turn: IndexedTurn,
        conversation_id: str | None = None,
    ) -> str:
        """A new conversation of ``owner`` holding its first turn: one Llama Stack call (one
        transaction in library mode), under ``conversation_id`` when given (``reserve_id``),
        then its index row. A conversation that fails to be written is not indexed. Where the
        history cache applies, the new history is cached with its items' ids
        (``history_cache``): its first continued question is then confirmed with one small
        read instead of read in full.

        Not concurrently: with SQLite (the default) both writes run on the event loop without
        waiting (``sqlite_runner``), and two tasks would only add loop turns between them.
        """
        items = _turn_items(question, answer)
        client = self.client
        conversation_id = conversation_id or self.reserve_id()
        conversation_id, ids = await client.create_conversation_with_items(
            {OWNER_KEY: owner}, items, conversation_id
        )
        await self.index.add(conversation_id, owner, turn.started_at, first_turn=turn)
        if client.strict_item_order and len(ids) == len(items):
            self.cache.put(conversation_id, owner, _turn_messages(question, answer), ids)
        return conversation_id

    async def open(self, raw_id: str, owner: str, *, in_path: bool = False) -> str:
        """The Llama Stack id of ``owner``'s conversation ``raw_id``; else 404 (400/422: malformed).

        A conversation without an owner (made through ``/v1/responses``) is open to every caller.
        """
        conversation_id = llama_stack_id(raw_id, in_path=in_path)
        if conversation_id is None:
            raise ConversationNotFoundError(raw_id)
        _check_owner(conversation_id, (await self.metadata(conversation_id)).get(OWNER_KEY), owner)
        return conversation_id

    async def open_with_history(self, raw_id: str, owner: str) -> Opened:
        """``owner``'s conversation ``raw_id`` and its history, to continue it (else 404).

        From the cache when the store confirms it (one small read; see ``history_cache``),
        else the owner (``_owner_and_items``) then the full read. Another caller's
        history is read and dropped, never returned.
        """
        conversation_id = llama_stack_id(raw_id)
        if conversation_id is None:
            raise ConversationNotFoundError(raw_id)
        client = self.client
        cached = self.cache.get(conversation_id) if client.strict_item_order else None
        if cached is not None:
            try:
                tail = await client.newest_item_ids(conversation_id, len(cached.tail))
            except NotFoundError as exc:
                self.cache.drop(conversation_id)
                raise ConversationNotFoundError(conversation_id) from exc
            if tuple(tail) == cached.tail:
                _check_owner(conversation_id, cached.owner, owner)
                return Opened(conversation_id, list(cached.messages), cached)
        try:
            recorded, items = await self._owner_and_items(conversation_id)
        except BaseException:
            self.cache.drop(conversation_id)
            raise
        _check_owner(conversation_id, recorded, owner)
        history = _history(turns_of(items))
        seen = None
        if client.strict_item_order and items:  # never an empty one: see ``history_cache``
            ids = [str(item.get("id") or "") for item in items]
            seen = self.cache.put(conversation_id, recorded, history, ids)
        return Opened(conversation_id, history, seen)

    async def _owner_and_items(self, conversation_id: str) -> tuple[str | None, list[JSON]]:
        """The conversation's recorded owner and its items (404 if unknown).

        The owner comes from the index when it has the conversation and the conversation has
        items: both are written when llama-entra creates it (with its first turn), the owner
        never changes, and a conversation deleted from the store has no items, whatever the
        index says. Otherwise (made through ``/v1/responses``, or still empty) Llama Stack's
        metadata says, which also answers whether it exists.
        """
        indexed = await self.index.get(conversation_id)
        try:
            items = await self.client.conversation_items(conversation_id)
        except NotFoundError as exc:
            raise ConversationNotFoundError(conversation_id) from exc
        if indexed is not None and items:
            return indexed.owner, items
        return (await self.metadata(conversation_id)).get(OWNER_KEY), items

    async def metadata(self, conversation_id: str) -> Mapping[str, str]:
        """The conversation's Llama Stack metadata (404 if unknown)."""
        try:
            record = await self.client.retrieve_conversation(conversation_id)
        except NotFoundError as exc:
            raise ConversationNotFoundError(conversation_id) from exc
        return record.metadata

    async def turns(self, conversation_id: str) -> list[Turn]:
        """The conversation's turns, oldest first."""
        return turns_of(await self.client.conversation_items(conversation_id))

    async def history(self, conversation_id: str) -> list[dict[str, str]]:
        """The conversation's messages as chat messages, question before answer."""
        return _history(await self.turns(conversation_id))

    async def record_turn(
        self,
        conversation_id: str,
        question: str,
        answer: str,
        turn: IndexedTurn,
        seen: CachedHistory | None = None,
    ) -> None:
        """Append question and answer to the conversation (one call) and index the turn.

        ``seen``: the cached history the turn continued, extended by it.
        """
        items = _turn_items(question, answer)
        ids = await self.client.add_conversation_items(conversation_id, items)
        if seen is not None:
            self.cache.extend(conversation_id, seen, _turn_messages(question, answer), ids)
        await self.index.add_turn(conversation_id, turn)

    async def listed(self, owner: str) -> list[IndexedConversation]:
        """``owner``'s conversations, most recently used first."""
        return await self.index.of_owner(owner)

    async def indexed(self, conversation_id: str) -> IndexedConversation | None:
        """What the index knows about a conversation."""
        return await self.index.get(conversation_id)

    async def indexed_turns(self, conversation_id: str) -> list[IndexedTurn]:
        """Per-turn model and times the index recorded."""
        return await self.index.turns(conversation_id)

    async def delete(self, conversation_id: str) -> None:
        """Delete the conversation from Llama Stack and the index."""
        self.cache.drop(conversation_id)
        try:
            await self.client.delete_conversation(conversation_id)
        except NotFoundError as exc:
            await self.index.remove(conversation_id)
            raise ConversationNotFoundError(conversation_id) from exc
        await self.index.remove(conversation_id)

    async def set_topic(self, conversation_id: str, summary: str) -> None:
        """Store the topic summary in the conversation's metadata and the index."""
        metadata = dict(await self.metadata(conversation_id))
        metadata["topic_summary"] = summary
        await self.client.update_conversation_metadata(conversation_id, metadata)
        await self.index.set_topic(conversation_id, summary)


@dataclass(frozen=True, slots=True)
class Opened:
    """A conversation about to get a turn: its id, history, and the cache entry it came from."""

    conversation_id: str
    history: list[dict[str, str]]
    seen: CachedHistory | None


def turns_of(items: list[JSON]) -> list[Turn]:
    """Turns rebuilt from a conversation's items (see the module docstring), oldest first."""
    turns: list[Turn] = []
    for item in items:
        kind = item.get("type")
        if kind == "message" and item.get("role") == "user":
            turns.append(Turn(messages=[{"content": _text(item), "type": "user"}]))
            continue
        if not turns:
            turns.append(Turn())
        if kind == "message" and item.get("role") in ("assistant", "system", "developer"):
            waiting = next((t for t in turns if not t.answered), turns[-1])
            waiting.messages.append({"content": _text(item), "type": item["role"]})
            waiting.answered = waiting.answered or item["role"] == "assistant"
        elif kind == "function_call":
            turns[-1].tool_calls.append(_tool_call(item))
        elif kind == "function_call_output":
            turns[-1].tool_results.append(_tool_result(item))
    return turns


def _history(turns: list[Turn]) -> list[dict[str, str]]:
    return [
        {"role": message["type"], "content": message["content"]}
        for turn in turns
        for message in turn.messages
    ]


def _check_owner(conversation_id: str, recorded: str | None, owner: str) -> None:
    """404 unless the conversation is ``owner``'s or has no owner."""
    if recorded is not None and recorded != owner:
        raise ConversationNotFoundError(conversation_id)


def _turn_items(question: str, answer: str) -> list[JSON]:
    return [
        {"type": "message", "role": "user", "content": question},
        {"type": "message", "role": "assistant", "content": answer},
    ]


def _turn_messages(question: str, answer: str) -> list[dict[str, str]]:
    """A turn as chat messages, as ``_history`` rebuilds it from the turn's items."""
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def _text(item: JSON) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text") or "") for part in content if isinstance(part, dict))
    return ""


def _tool_call(item: JSON) -> JSON:
    try:
        args = json.loads(item.get("arguments") or "{}")
    except ValueError:
        args = {"arguments": item.get("arguments")}
    return {
        "id": str(item.get("call_id") or item.get("id") or ""),
        "name": str(item.get("name") or ""),
        "args": args if isinstance(args, dict) else {"arguments": args},
        "type": "tool_call",
    }


def _tool_result(item: JSON) -> JSON:
    output = item.get("output")
    return {
        "id": str(item.get("call_id") or item.get("id") or ""),
        "status": "success",
        "content": output if isinstance(output, str) else json.dumps(output),
        "type": "tool_result",
        "round": 1,
    }

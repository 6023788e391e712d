"""Conversation histories kept in memory, trusted only after the store confirms them.

Continuing a conversation needs its whole history. Reading it from Llama Stack costs one call
per page plus the validation of every item, so it grows with the conversation (131 ms for a
long one on OGX in a prototype). This cache keeps, per conversation, what llama-entra last read
or wrote: the owner, the chat messages, and the ids of the newest items (``tail``, oldest
first). Before each use the store is asked for the ids of its newest ``len(tail)`` items, one
small read that also fails when the conversation is gone:

- the same ids: nothing was added since, by anyone, so the cached history is the store's;
- other ids (another replica, ``/v1/responses``, a direct client added items): read it all.

After llama-entra appends a turn it extends the entry and expects ``(previous newest, question,
answer)`` as the tail: had anyone appended between its read and its write, their items would
sort among or after those three (items are ordered per conversation, see below), the check
would fail and the next use would read everything again. So no replica serves history it has
not confirmed against the shared store; a cache costs one small read, not correctness.

This needs a store that orders a conversation's items strictly in the order they were added
(OGX: a per-conversation sequence). llama-stack 0.7.3 orders them by a timestamp in whole
seconds, so an item added later can sort before an earlier one and the newest ids may not
change when items are added: there, no cache (``StackClient.strict_item_order``).

A conversation without items is never cached: its tail is empty, which is also what a
deleted conversation's tail looks like to a store-level read (``backends.ogx_direct``).

Bounded: the least recently used conversations are dropped beyond ``max_conversations``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["CachedHistory", "HistoryCache"]

TAIL = 3  # newest item ids checked per use: previous newest, question, answer


@dataclass(frozen=True, slots=True)
class CachedHistory:
    """A conversation's history as last seen: owner, chat messages, newest item ids."""

    owner: str | None
    messages: tuple[dict[str, str], ...]
    tail: tuple[str, ...]


class HistoryCache:
    """LRU map of conversation id to ``CachedHistory``; see the module docstring."""

    def __init__(self, max_conversations: int = 512) -> None:
        self._entries: OrderedDict[str, CachedHistory] = OrderedDict()
        self._max = max_conversations

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, conversation_id: str) -> CachedHistory | None:
        """The entry to confirm before use, if any."""
        entry = self._entries.get(conversation_id)
        if entry is not None:
            self._entries.move_to_end(conversation_id)
        return entry

    def put(
        self,
        conversation_id: str,
        owner: str | None,
        messages: list[dict[str, str]],
        item_ids: list[str],
    ) -> CachedHistory:
        """Remember a history just read in full (``item_ids``: all its items, oldest first)."""
        entry = CachedHistory(owner, tuple(messages), tuple(item_ids[-TAIL:]))
        self._store(conversation_id, entry)
        return entry

    def extend(
        self,
        conversation_id: str,
        seen: CachedHistory,
        messages: list[dict[str, str]],
        item_ids: list[str],
    ) -> None:
        """After appending ``item_ids`` to a history confirmed as ``seen``: the new entry.

        If the entry changed meanwhile (another request of this process), it is dropped.
        """
        if self._entries.get(conversation_id) is not seen:
            self.drop(conversation_id)
            return
        tail = (*seen.tail, *item_ids)[-TAIL:]
        self._store(conversation_id, CachedHistory(seen.owner, (*seen.messages, *messages), tail))

    def drop(self, conversation_id: str) -> None:
        """Forget a conversation (deleted, or its history could not be confirmed)."""
        self._entries.pop(conversation_id, None)

    def _store(self, conversation_id: str, entry: CachedHistory) -> None:
        self._entries[conversation_id] = entry
        self._entries.move_to_end(conversation_id)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

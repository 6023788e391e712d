"""Unit tests: cached histories are used only when the store confirms them, and a continued
conversation's owner comes from the index only while the store still has its items.

``_Store`` is an in-memory Llama Stack conversation store with strict item order, counting the
calls the conversation store makes; a second writer appends to it directly, as another replica
would. ``_Index`` remembers owners like the conversation index.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import pytest

from llama_entra.backends.base import ConversationRecord
from llama_entra.conversations import OWNER_KEY, ConversationStore
from llama_entra.conversations.history_cache import HistoryCache
from llama_entra.conversations.index import IndexedConversation, IndexedTurn
from llama_entra.errors import ConversationNotFoundError, DatabaseUnavailableError, NotFoundError

_CONVERSATION = "conv_" + "ab" * 24
_TURN = IndexedTurn("azure/m", "azure", 1.0, 2.0)


class _Store:
    """The parts of ``StackClient`` the conversation store uses, in memory."""

    def __init__(self, *, strict: bool = True, gone_is_empty: bool = False) -> None:
        self.strict_item_order = strict
        self.chooses_conversation_ids = False
        self.failing_create: Exception | None = None
        self.reports_ids = True  # library mode; a server's create reports no item ids
        self.gone_is_empty = gone_is_empty  # a store-level read (OGX) sees no items, no error
        self.items: dict[str, list[dict[str, Any]]] = {}
        self.metadata: dict[str, dict[str, str]] = {}
        self.calls: list[str] = []
        self._ids = itertools.count()

    def append(self, conversation_id: str, role: str, text: str) -> str:
        item_id = f"msg_{next(self._ids)}"
        item = {"id": item_id, "type": "message", "role": role, "content": text}
        self.items[conversation_id].append(item)
        return item_id

    async def create_conversation(
        self,
        metadata: Mapping[str, str] | None = None,
        items: list[dict[str, Any]] | None = None,
        conversation_id: str | None = None,
    ) -> str:
        assert conversation_id is None or self.chooses_conversation_ids
        self.calls.append("create")
        if self.failing_create is not None:
            raise self.failing_create
        conversation_id = conversation_id or _CONVERSATION
        self.items[conversation_id] = []
        self.metadata[conversation_id] = dict(metadata or {})
        for item in items or []:
            self.append(conversation_id, item["role"], item["content"])
        return conversation_id

    async def create_conversation_with_items(
        self,
        metadata: Mapping[str, str],
        items: list[dict[str, Any]],
        conversation_id: str | None = None,
    ) -> tuple[str, list[str]]:
        conversation_id = await self.create_conversation(metadata, items, conversation_id)
        ids = [item["id"] for item in self.items[conversation_id]]
        return conversation_id, ids if self.reports_ids else []

    async def retrieve_conversation(self, conversation_id: str) -> ConversationRecord:
        self.calls.append("retrieve")
        if conversation_id not in self.items:
            raise NotFoundError("gone")
        return ConversationRecord(conversation_id, 0, self.metadata[conversation_id])

    async def conversation_items(self, conversation_id: str) -> list[dict[str, Any]]:
        self.calls.append("items")
        if conversation_id not in self.items:
            if self.gone_is_empty:  # llama-stack 0.7.3 at the store: no rows, no error
                return []
            raise NotFoundError("gone")
        return list(self.items[conversation_id])

    async def newest_item_ids(self, conversation_id: str, count: int) -> list[str]:
        self.calls.append("newest")
        if conversation_id not in self.items:
            if self.gone_is_empty:
                return []
            raise NotFoundError("gone")
        return [item["id"] for item in self.items[conversation_id][-count:]]

    async def add_conversation_items(
        self, conversation_id: str, items: list[dict[str, Any]]
    ) -> list[str]:
        self.calls.append("add")
        return [self.append(conversation_id, i["role"], i["content"]) for i in items]


class _Index:
    def __init__(self) -> None:
        self.owners: dict[str, str] = {}

    async def add(self, conversation_id: str, owner: str, *args: object, **kwargs: object) -> None:
        self.owners[conversation_id] = owner

    async def add_turn(self, *args: object) -> None:
        return None

    async def remove(self, conversation_id: str) -> None:
        self.owners.pop(conversation_id, None)

    async def get(self, conversation_id: str) -> IndexedConversation | None:
        owner = self.owners.get(conversation_id)
        if owner is None:
            return None
        return IndexedConversation(conversation_id, owner, 0.0, None, 0, None, None, None)


def _conversations(
    store: _Store, cache: HistoryCache | None = None, index: _Index | None = None
) -> ConversationStore:
    holder = SimpleNamespace(client=store)
    return ConversationStore(holder, index or _Index(), cache)  # type: ignore[arg-type]


async def _turn(conversations: ConversationStore, question: str, owner: str = "alice") -> list[str]:
    """Continue the conversation like ``/v1/query``: its history as the model would get it."""
    opened = await conversations.open_with_history(_CONVERSATION, owner)
    await conversations.record_turn(_CONVERSATION, question, f"re {question}", _TURN, opened.seen)
    return [m["content"] for m in opened.history]


async def _started(store: _Store) -> ConversationStore:
    conversations = _conversations(store)
    await conversations.create_with_turn("alice", "q1", "re q1", _TURN)
    return conversations


async def test_store_reads_a_history_once_then_confirms_it_with_one_small_read() -> None:
    store = _Store()
    store.reports_ids = False  # created elsewhere than in library mode: not cached yet
    conversations = await _started(store)
    assert await _turn(conversations, "q2") == ["q1", "re q1"]
    assert store.calls == ["create", "items", "add"]  # the owner from the index
    store.calls.clear()
    assert await _turn(conversations, "q3") == ["q1", "re q1", "q2", "re q2"]
    assert store.calls == ["newest", "add"]  # no metadata, no full read


async def test_store_caches_a_conversation_it_created_with_its_first_turn() -> None:
    store = _Store()
    conversations = await _started(store)
    assert len(conversations.cache) == 1
    assert await _turn(conversations, "q2") == ["q1", "re q1"]
    assert store.calls == ["create", "newest", "add"]  # confirmed, never read in full
    store.calls.clear()
    assert await _turn(conversations, "q3") == ["q1", "re q1", "q2", "re q2"]
    assert store.calls == ["newest", "add"]


async def test_store_reads_a_created_conversation_again_when_another_writer_appended() -> None:
    store = _Store()
    conversations = await _started(store)
    store.append(_CONVERSATION, "user", "from b")  # before our first continued question
    store.append(_CONVERSATION, "assistant", "re from b")
    store.calls.clear()
    assert await _turn(conversations, "q2") == ["q1", "re q1", "from b", "re from b"]
    assert store.calls == ["newest", "items", "add"]


async def test_store_reads_again_when_another_writer_appended() -> None:
    store = _Store()
    conversations = await _started(store)
    await _turn(conversations, "q2")  # cached
    store.append(_CONVERSATION, "user", "from b")  # another replica's turn
    store.append(_CONVERSATION, "assistant", "re from b")
    store.calls.clear()
    history = await _turn(conversations, "q3")
    assert history == ["q1", "re q1", "q2", "re q2", "from b", "re from b"]
    assert store.calls == ["newest", "items", "add"]


async def test_store_reads_again_when_another_writer_appended_between_read_and_write() -> None:
    store = _Store()
    conversations = await _started(store)
    opened = await conversations.open_with_history(_CONVERSATION, "alice")
    store.append(_CONVERSATION, "user", "from b")  # lands between our read and our write
    store.append(_CONVERSATION, "assistant", "re from b")
    await conversations.record_turn(_CONVERSATION, "q2", "re q2", _TURN, opened.seen)
    history = await _turn(conversations, "q3")
    assert history == ["q1", "re q1", "from b", "re from b", "q2", "re q2"]


@pytest.mark.parametrize("gone_is_empty", [False, True])
async def test_store_never_serves_a_deleted_conversation_from_the_cache(
    gone_is_empty: bool,
) -> None:
    store = _Store(gone_is_empty=gone_is_empty)
    conversations = await _started(store)
    await _turn(conversations, "q2")
    assert len(conversations.cache) == 1
    del store.items[_CONVERSATION]  # deleted through another replica
    with pytest.raises(ConversationNotFoundError):
        await conversations.open_with_history(_CONVERSATION, "alice")
    assert store.calls[-1] != "add" and len(conversations.cache) == 0


async def test_store_keeps_another_callers_conversation_hidden_from_the_cache_too() -> None:
    store = _Store()
    conversations = await _started(store)
    await _turn(conversations, "q2")
    for _ in range(2):  # a full read, then a cache hit
        with pytest.raises(ConversationNotFoundError):
            await conversations.open_with_history(_CONVERSATION, "mallory")
    assert store.metadata[_CONVERSATION] == {OWNER_KEY: "alice"}


async def test_store_without_strict_item_order_never_caches() -> None:
    store = _Store(strict=False)
    conversations = await _started(store)
    assert len(conversations.cache) == 0
    await _turn(conversations, "q2")
    store.calls.clear()
    await _turn(conversations, "q3")
    assert store.calls == ["items", "add"]
    assert len(conversations.cache) == 0


@pytest.mark.parametrize("gone_is_empty", [False, True])
async def test_an_indexed_conversation_gone_from_the_store_is_unknown(gone_is_empty: bool) -> None:
    store = _Store(strict=False, gone_is_empty=gone_is_empty)
    conversations = await _started(store)
    del store.items[_CONVERSATION]  # deleted from the store; the index still has it
    with pytest.raises(ConversationNotFoundError):
        await conversations.open_with_history(_CONVERSATION, "alice")


async def test_a_conversation_the_index_lacks_is_checked_by_its_metadata() -> None:
    store = _Store(strict=False)
    await _started(store)
    conversations = _conversations(store)  # another replica: its own, empty index
    store.calls.clear()
    assert await _turn(conversations, "q2") == ["q1", "re q1"]
    assert store.calls == ["items", "retrieve", "add"]
    with pytest.raises(ConversationNotFoundError):
        await conversations.open_with_history(_CONVERSATION, "mallory")


async def test_new_conversation_is_created_with_its_first_turn_in_one_call() -> None:
    store = _Store()
    await _started(store)
    assert store.calls == ["create"]
    assert [i["content"] for i in store.items[_CONVERSATION]] == ["q1", "re q1"]


async def test_a_conversation_under_a_reserved_id_is_stored_and_indexed_together() -> None:
    store = _Store()
    store.chooses_conversation_ids = True
    index = _Index()
    conversations = _conversations(store, index=index)
    conversation_id = await conversations.create_with_turn("alice", "q1", "re q1", _TURN)
    assert conversation_id != _CONVERSATION and conversation_id.startswith("conv_")
    assert index.owners == {conversation_id: "alice"}
    assert [i["content"] for i in store.items[conversation_id]] == ["q1", "re q1"]


async def test_a_reserved_conversation_that_fails_to_be_written_leaves_no_index_row() -> None:
    store = _Store()
    store.chooses_conversation_ids = True
    store.failing_create = DatabaseUnavailableError("PostgreSQL", "down")
    index = _Index()
    conversations = _conversations(store, index=index)
    with pytest.raises(DatabaseUnavailableError):
        await conversations.create_with_turn("alice", "q1", "re q1", _TURN)
    assert index.owners == {} and store.items == {}


def test_cache_drops_the_least_recently_used_conversation() -> None:
    cache = HistoryCache(max_conversations=2)
    cache.put("a", None, [], ["1"])
    cache.put("b", None, [], ["2"])
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", None, [], ["3"])
    assert cache.get("b") is None and cache.get("a") is not None and len(cache) == 2


def test_cache_keeps_the_newest_three_ids_and_refuses_to_extend_a_replaced_entry() -> None:
    cache = HistoryCache()
    seen = cache.put("a", "alice", [{"role": "user", "content": "q"}], ["1", "2", "3", "4"])
    assert seen.tail == ("2", "3", "4")
    cache.extend("a", seen, [{"role": "user", "content": "q2"}], ["5", "6"])
    extended = cache.get("a")
    assert extended is not None and extended.tail == ("4", "5", "6")
    assert len(extended.messages) == 2
    cache.extend("a", seen, [], ["7"])  # ``seen`` is no longer the entry: drop, not guess
    assert cache.get("a") is None

"""Library mode: the in-process stack's conversations service, called directly.

Through the library client every conversation call is dressed as an HTTP request and undressed
again: the SDK builds and transforms the request, the library client finds the route, reads the
endpoint's type hints and builds its pydantic request, then dumps the result to JSON text,
wraps it in an ``httpx.Response`` and the SDK parses that into its own models, which the
adapter dumps to JSON once more. Measured on llama-stack 0.7.3 that is 1-3 ms of CPU per call
around well under a millisecond of store work (and a query makes two or three such calls).
Here the service's own request models go straight to the implementation: the same code that
the route would run, with the same validation and the same exceptions (the library client
passes them through unchanged, so the adapters' error boundary translates them alike).

A new conversation is written in one transaction, its row and its first items together,
under an id the caller may choose: a streamed first answer names its
conversation in its first event and writes it, whole, only once the answer is complete.

llama-stack 0.7.3 (``llama_stack_api.conversations``) and OGX (``ogx_api.conversations``)
share these names and signatures; the adapter hands in its backend's module. What this module
and its subclasses write or read at the store itself goes through a ``StoreLane`` (on SQLite: on
the event loop unless it would wait for a lock, never through aiosqlite's thread).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

from llama_entra.backends.base import JSON, ConversationRecord
from llama_entra.backends.conversation_ids import new_conversation_id
from llama_entra.backends.records import conversation_record
from llama_entra.backends.store_lane import StoreLane

__all__ = ["CONVERSATIONS_TABLE", "DirectConversations", "ItemPage"]

CONVERSATIONS_TABLE = "openai_conversations"  # the same in llama-stack 0.7.3 and OGX


class ItemPage:
    """One page of a conversation's items, as JSON, and whether more follow."""

    __slots__ = ("has_more", "items")

    def __init__(self, items: list[JSON], has_more: bool) -> None:
        self.items = items
        self.has_more = has_more


class DirectConversations:
    """Create, read and append to conversations without the library client's HTTP emulation."""

    def __init__(self, impl: Any, api: ModuleType, items_table: str) -> None:
        self._impl = impl
        self._api = api
        self._items_table = items_table
        self._lane = StoreLane(impl.sql_store)

    async def aclose(self) -> None:
        """Stop the store lane (the stack's own store stays open)."""
        await self._lane.aclose()

    async def create(
        self,
        metadata: Mapping[str, str],
        items: list[JSON] | None,
        conversation_id: str | None = None,
    ) -> str:
        """A new conversation with ``items``, in one transaction; its id (``conversation_id``
        when given)."""
        created, _ = await self.create_with_item_ids(metadata, items, conversation_id)
        return created

    async def create_with_item_ids(
        self,
        metadata: Mapping[str, str],
        items: list[JSON] | None,
        conversation_id: str | None = None,
    ) -> tuple[str, list[str]]:
        """``create``, and the ids of the items written, oldest first."""
        request = self._api.CreateConversationRequest(metadata=dict(metadata), items=items)
        conversation_id = conversation_id or new_conversation_id()
        created_at = int(time.time())
        row = {"id": conversation_id, "created_at": created_at, "metadata": request.metadata}
        records = await self._item_records(conversation_id, request.items or [], created_at)
        writes: list[tuple[str, Any]] = [(CONVERSATIONS_TABLE, row)]
        if records:
            writes.append((self._items_table, records))
        await self._lane.insert(writes)
        return conversation_id, [str(record["id"]) for record in records]

    async def _item_records(
        self, conversation_id: str, items: Sequence[Any], created_at: int
    ) -> list[JSON]:
        """The item rows of a new conversation, built the way the backend builds them."""
        raise NotImplementedError

    async def retrieve(self, conversation_id: str) -> ConversationRecord:
        """One conversation (the backend's not-found error if unknown)."""
        request = self._api.GetConversationRequest(conversation_id=conversation_id)
        return conversation_record(await self._impl.get_conversation(request))

    async def add_items(self, conversation_id: str, items: list[JSON]) -> list[str]:
        """Append ``items`` in one call; their ids."""
        request = self._api.AddItemsRequest(items=items)
        added = await self._impl.add_items(conversation_id, request)
        return [str(item.id) for item in added.data]

    async def newest_ids(self, conversation_id: str, count: int) -> list[str]:
        """Ids of the newest ``count`` items, oldest first (only the ids are read out)."""
        request = self._api.ListItemsRequest(
            conversation_id=conversation_id, order="desc", limit=count
        )
        listed = await self._impl.list_items(request)
        return [str(item.id) for item in reversed(listed.data)]

    async def items(
        self, conversation_id: str, *, order: str, limit: int, after: str | None = None
    ) -> ItemPage:
        """One page of items in ``order`` (``asc`` or ``desc``)."""
        request = self._api.ListItemsRequest(
            conversation_id=conversation_id, order=order, limit=limit, after=after
        )
        listed = await self._impl.list_items(request)
        items = [item.model_dump(mode="json", exclude_none=True) for item in listed.data]
        return ItemPage(items, bool(listed.has_more))

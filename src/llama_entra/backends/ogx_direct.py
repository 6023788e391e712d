"""OGX 1.x, library mode: the two conversation calls of a continued query, at the store.

A query that continues a conversation confirms its cached history (``history_cache``) and
then appends a turn. Through OGX's service each of those first reads the conversation row and
builds a pydantic ``TypeAdapter`` for its item union (about 1.7 ms each time, measured), around
one small indexed read or one insert. Here:

- ``newest_ids`` reads only the ids of the newest items (``sort_order`` descending). It does
  not read the conversation row: OGX deletes a conversation's items with it, and the cache
  never holds a conversation without items, so a deleted conversation shows as a changed tail
  and is read again in full (where the missing row is a 404).
- ``add_items`` runs OGX's own steps (next ``sort_order``, its record builder, one insert)
  without re-reading the conversation (``open_with_history`` has just read it; that was never
  atomic with the write, so the outcome of a concurrent delete is as before) and without
  building the answer list nobody reads.

These are OGX's private helpers and its items table (``ITEMS_TABLE``, handed in by the
backend), pinned by ``uv.lock`` (ogx 1.5); the end-to-end suite runs through them.
"""

from __future__ import annotations

import time
from typing import Any

from llama_entra.backends.base import JSON
from llama_entra.backends.direct import DirectConversations

__all__ = ["OgxDirectConversations"]


class OgxDirectConversations(DirectConversations):
    """``DirectConversations`` with the store-level steps above."""

    def __init__(self, impl: Any, api: Any, items_table: str) -> None:
        super().__init__(impl, api)
        self._items_table = items_table

    async def newest_ids(self, conversation_id: str, count: int) -> list[str]:
        """Ids of the newest ``count`` items, oldest first."""
        impl: Any = self._impl
        result = await impl.sql_store.fetch_all(
            table=self._items_table,
            where={"conversation_id": conversation_id},
            order_by=[("sort_order", "desc")],
            limit=count,
        )
        return [str(row["id"]) for row in reversed(result.data)]

    async def add_items(self, conversation_id: str, items: list[JSON]) -> list[str]:
        """Append ``items`` in one insert; their ids."""
        impl: Any = self._impl
        request = self._api.AddItemsRequest(items=items)
        base_sort_order = await impl._next_sort_order(conversation_id)
        records = await impl._resolve_item_records(
            conversation_id, request.items, int(time.time()), base_sort_order
        )
        if records:
            await impl.sql_store.insert(table=self._items_table, data=records)
        return [str(record["id"]) for record in records]

"""llama-stack 0.7.3, library mode: a turn's items written and read at the store, not per item.

That version's ``add_items`` reads the conversation, then upserts each item in a transaction
of its own: for a question and its answer three sessions, each a round of hops to aiosqlite's
thread for execute and commit (the store runs WAL with ``synchronous=NORMAL``, so the cost is
the hops and SQLAlchemy, not the disk), the largest part of a continued query's bookkeeping.
Its ``list_items`` reads the conversation, then every item row, and validates each into a
pydantic model that is dumped right back. Here:

- ``add_items`` writes the same records (an id per item, ``created_at`` one second apart in
  order, the items as dumped by its own models) with one insert, the way its
  ``create_conversation`` already writes a conversation's first items. It does not read the
  conversation first: the query that writes has just read it (``open_with_history``), and that
  read-then-write was never atomic, so a conversation deleted meanwhile keeps the same outcome
  as before (the delete wins; the rows it would orphan are never listed).
- ``items`` reads the rows and sorts them the way ``list_items`` does, without the per-item
  validation (the stored dicts are what its models dumped) and without its existence check
  (``open_with_history`` checks the conversation concurrently and fails first).

0.7.3 is the last release under that name, so its table layout will not move under this code;
OGX already writes a call's items in one insert and pages its reads in SQL.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from llama_entra.backends.base import JSON
from llama_entra.backends.direct import DirectConversations, ItemPage

__all__ = ["ITEMS_TABLE", "LlamaStackDirectConversations"]

ITEMS_TABLE = "conversation_items"


class LlamaStackDirectConversations(DirectConversations):
    """``DirectConversations`` writing and reading item rows itself (see the module docstring)."""

    def __init__(self, impl: Any, api: Any) -> None:
        super().__init__(impl, api, ITEMS_TABLE)

    async def _item_records(
        self, conversation_id: str, items: Sequence[Any], created_at: int
    ) -> list[JSON]:
        """Rows as 0.7.3 writes them, ``created_at`` one second apart to keep their order."""
        impl: Any = self._impl
        records: list[JSON] = []
        for offset, item in enumerate(items):
            item_dict = item.model_dump()
            records.append(
                {
                    "id": impl._get_or_generate_item_id(item, item_dict),
                    "conversation_id": conversation_id,
                    "created_at": created_at + offset,
                    "item_data": item_dict,
                }
            )
        return records

    async def add_items(self, conversation_id: str, items: list[JSON]) -> list[str]:
        """Append ``items`` in one transaction; their ids."""
        request = self._api.AddItemsRequest(items=items)
        records = await self._item_records(conversation_id, request.items, int(time.time()))
        if records:
            await self._lane.insert([(ITEMS_TABLE, records)])
        return [str(record["id"]) for record in records]

    async def items(
        self, conversation_id: str, *, order: str, limit: int, after: str | None = None
    ) -> ItemPage:
        """Items as stored, sorted by ``created_at`` like ``list_items`` (``after`` ignored, as
        there)."""
        where = {"conversation_id": conversation_id}
        rows = (await self._lane.fetch_all(table=ITEMS_TABLE, where=where)).data
        rows.sort(key=lambda row: row["created_at"], reverse=order != "asc")
        return ItemPage([dict(row["item_data"]) for row in rows[:limit]], has_more=False)

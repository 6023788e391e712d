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
- Its items table has no index but its primary key (the item id), so reading one
  conversation's items scans every item of every conversation: 1.3 ms at 10,000 items and
  14 ms at 100,000 (SQLite, measured), a cost that grows with the store, not the conversation.
  Before its first read this adds one, ``CREATE INDEX IF NOT EXISTS`` on ``(conversation_id,
  created_at)`` (``ITEMS_INDEX``): additive, ignored by Llama Stack, and kept by the database
  for every later start. Best effort: if it cannot be created (another replica creating it at
  the same moment), reads work as before, only slower.

0.7.3 is the last release under that name, so its table layout will not move under this code;
OGX already writes a call's items in one insert and pages its reads in SQL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from llama_entra.backends.base import JSON
from llama_entra.backends.direct import DirectConversations, ItemPage

__all__ = ["ITEMS_INDEX", "ITEMS_TABLE", "LlamaStackDirectConversations"]

logger = logging.getLogger(__name__)
ITEMS_TABLE = "conversation_items"
ITEMS_INDEX = "llama_entra_conversation_items_by_conversation"
_CREATE_INDEX = (
    f"CREATE INDEX IF NOT EXISTS {ITEMS_INDEX} ON {ITEMS_TABLE} (conversation_id, created_at)"
)


class LlamaStackDirectConversations(DirectConversations):
    """``DirectConversations`` writing and reading item rows itself (see the module docstring)."""

    def __init__(self, impl: Any, api: Any) -> None:
        super().__init__(impl, api, ITEMS_TABLE)
        self._indexed = False

    async def ensure_index(self) -> None:
        """Index the items table by conversation, once per process (see the module docstring)."""
        if self._indexed:
            return
        self._indexed = True  # best effort: tried once, whatever the outcome

        def create(connection: Connection) -> None:
            connection.exec_driver_sql(_CREATE_INDEX)

        try:
            await self._lane.run(create)
        except SQLAlchemyError as exc:
            logger.warning("could not index %s by conversation: %s", ITEMS_TABLE, exc)

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
        await self.ensure_index()
        where = {"conversation_id": conversation_id}
        rows = (await self._lane.fetch_all(table=ITEMS_TABLE, where=where)).data
        rows.sort(key=lambda row: row["created_at"], reverse=order != "asc")
        return ItemPage([dict(row["item_data"]) for row in rows[:limit]], has_more=False)

"""OGX 1.x, library mode: the conversation calls of a query, at the store.

A query that continues a conversation confirms its cached history (``history_cache``) and
then appends a turn. Through OGX's service each of those first reads the conversation row and
builds a pydantic ``TypeAdapter`` for its item union (about 1.7 ms each time, measured), around
one small indexed read or one insert. Here:

- ``newest_ids`` reads only the ids of the newest items (``sort_order`` descending). It does
  not read the conversation row: OGX deletes a conversation's items with it, and the cache
  never holds a conversation without items, so a deleted conversation shows as a changed tail
  and is read again in full (where the missing row is a 404).
- ``add_items`` builds the rows with OGX's own record builder, then reads the next
  ``sort_order`` and inserts in one transaction (OGX: two store sessions), without re-reading the
  conversation (``open_with_history`` has just read it; that was never atomic with the write,
  so the outcome of a concurrent delete is as before) and without building the answer list
  nobody reads.
- ``create`` (see ``direct``) writes a new conversation's row and items in one transaction.

These are OGX's private helpers and its items table (``ITEMS_TABLE``, handed in by the
backend), pinned by ``uv.lock`` (ogx 1.5); the end-to-end suite runs through them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Select, bindparam, func, select

from llama_entra.backends.base import JSON
from llama_entra.backends.direct import DirectConversations

__all__ = ["OgxDirectConversations"]


class OgxDirectConversations(DirectConversations):
    """``DirectConversations`` with the store-level steps above."""

    def __init__(self, impl: Any, api: Any, items_table: str) -> None:
        super().__init__(impl, api, items_table)
        self._newest_sort_order: Select[Any] | None = None

    async def _item_records(
        self, conversation_id: str, items: Sequence[Any], created_at: int
    ) -> list[JSON]:
        """Rows as OGX's ``create_conversation`` builds them (sort order from 0)."""
        impl: Any = self._impl
        records: list[JSON] = await impl._resolve_item_records(
            conversation_id, items, created_at, 0
        )
        return records

    async def newest_ids(self, conversation_id: str, count: int) -> list[str]:
        """Ids of the newest ``count`` items, oldest first."""
        result = await self._lane.fetch_all(
            table=self._items_table,
            where={"conversation_id": conversation_id},
            order_by=[("sort_order", "desc")],
            limit=count,
        )
        return [str(row["id"]) for row in reversed(result.data)]

    async def add_items(self, conversation_id: str, items: list[JSON]) -> list[str]:
        """Append ``items`` after the newest one: the read and the insert in one transaction.

        As in OGX, the read and the insert are not atomic against another writer (SQLite
        begins its transaction at the insert; PostgreSQL reads committed rows).
        """
        request = self._api.AddItemsRequest(items=items)
        records = await self._item_records(conversation_id, request.items, int(time.time()))
        if not records:
            return []
        rows = await self._lane.prepare(self._items_table, records)
        if self._newest_sort_order is None:  # built once: SQLAlchemy then reuses it compiled
            table = self._lane.table(self._items_table)
            self._newest_sort_order = select(func.max(table.c.sort_order)).where(
                table.c.conversation_id == bindparam("conversation_id")
            )
        newest_sort_order = self._newest_sort_order
        insert = self._lane.table(self._items_table).insert()

        def append(connection: Connection) -> None:
            newest = connection.execute(
                newest_sort_order, {"conversation_id": conversation_id}
            ).scalar()
            first = 0 if newest is None else int(newest) + 1
            for offset, row in enumerate(rows):
                row["sort_order"] = first + offset
            connection.execute(insert, rows)

        await self._lane.run(append)
        return [str(record["id"]) for record in records]

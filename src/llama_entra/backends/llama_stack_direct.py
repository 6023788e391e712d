"""llama-stack 0.7.3, library mode: a turn's items written in one transaction.

That version's ``add_items`` checks the conversation, then upserts each item in a transaction
of its own: two commits (and their syncs to disk) for a question and its answer, 4-9 ms each
on a loaded disk, the largest part of a continued query's bookkeeping. ``add_items`` here does
what that method does (the same check, the same records: an id per item, ``created_at`` one
second apart in order, the items as dumped by its own models) with one insert of all of them,
the way its ``create_conversation`` already writes a conversation's first items. 0.7.3 is the
last release under that name, so its table layout will not move under this code; OGX writes a
call's items in one insert already.
"""

from __future__ import annotations

import time
from typing import Any

from llama_entra.backends.base import JSON
from llama_entra.backends.direct import DirectConversations

__all__ = ["LlamaStackDirectConversations"]

_ITEMS_TABLE = "conversation_items"


class LlamaStackDirectConversations(DirectConversations):
    """``DirectConversations`` whose ``add_items`` commits once (see the module docstring)."""

    async def add_items(self, conversation_id: str, items: list[JSON]) -> list[str]:
        """Append ``items`` in one transaction; their ids."""
        impl: Any = self._impl
        await impl._get_validated_conversation(conversation_id)
        request = self._api.AddItemsRequest(items=items)
        base_time = int(time.time())
        records: list[JSON] = []
        for offset, item in enumerate(request.items):
            item_dict = item.model_dump()
            item_id = impl._get_or_generate_item_id(item, item_dict)
            records.append(
                {
                    "id": item_id,
                    "conversation_id": conversation_id,
                    "created_at": base_time + offset,
                    "item_data": item_dict,
                }
            )
        if records:
            await impl.sql_store.insert(table=_ITEMS_TABLE, data=records)
        return [str(record["id"]) for record in records]

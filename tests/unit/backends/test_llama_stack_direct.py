"""``LlamaStackDirectConversations`` against llama-stack 0.7.3's real SQL store (a SQLite file).

Its items table has no index by conversation; the first read adds one, so reading one
conversation's items stops scanning every item of the store, and the items read back are the
ones written, in order.
"""

from __future__ import annotations

import sqlite3
import types
from pathlib import Path
from typing import Any

import pytest


async def _direct(path: Path) -> Any:
    """The class under test on a store laid out as 0.7.3's conversation service lays it out."""
    import llama_stack_api.conversations as api
    from llama_stack.core.conversations.conversations import ConversationServiceImpl
    from llama_stack.core.storage.datatypes import SqliteSqlStoreConfig
    from llama_stack.core.storage.sqlstore.authorized_sqlstore import AuthorizedSqlStore
    from llama_stack.core.storage.sqlstore.sqlalchemy_sqlstore import SqlAlchemySqlStoreImpl
    from llama_stack_api.internal.sqlstore import ColumnDefinition, ColumnType

    from llama_entra.backends.llama_stack_direct import ITEMS_TABLE, LlamaStackDirectConversations

    store = AuthorizedSqlStore(SqlAlchemySqlStoreImpl(SqliteSqlStoreConfig(db_path=str(path))), [])
    await store.create_table(
        ITEMS_TABLE,
        {
            "id": ColumnDefinition(type=ColumnType.STRING, primary_key=True),
            "conversation_id": ColumnType.STRING,
            "created_at": ColumnType.INTEGER,
            "item_data": ColumnType.JSON,
        },
    )
    impl = types.SimpleNamespace(sql_store=store)
    impl._get_or_generate_item_id = types.MethodType(  # type: ignore[attr-defined]
        ConversationServiceImpl._get_or_generate_item_id, impl
    )
    return LlamaStackDirectConversations(impl, api)


async def _close(direct: Any) -> None:
    await direct.aclose()
    await direct._impl.sql_store.sql_store.shutdown()


def _message(role: str, text: str) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": text}


async def test_llama_stack_direct_first_read_indexes_items_by_conversation(
    tmp_path: Path,
) -> None:
    from llama_entra.backends.llama_stack_direct import ITEMS_INDEX, ITEMS_TABLE

    path = tmp_path / "sql_store.db"
    direct = await _direct(path)
    try:
        await direct.add_items("conv_a", [_message("user", "q1"), _message("assistant", "a1")])
        await direct.add_items("conv_b", [_message("user", "other")])
        page = await direct.items("conv_a", order="asc", limit=100)
        again = await direct.items("conv_a", order="asc", limit=100)  # once per process
    finally:
        await _close(direct)
    assert [item["content"] for item in page.items] == ["q1", "a1"]
    assert again.items == page.items
    with sqlite3.connect(path) as connection:
        indexes = connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?", (ITEMS_TABLE,)
        ).fetchall()
        plan = connection.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM conversation_items WHERE conversation_id = ?",
            ("conv_a",),
        ).fetchall()
    assert (ITEMS_INDEX,) in indexes
    assert any(ITEMS_INDEX in str(step) for step in plan), plan


async def test_llama_stack_direct_read_works_when_the_index_cannot_be_made(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "sql_store.db"
    direct = await _direct(path)
    with sqlite3.connect(path) as connection:  # a table, not an index, holds the name
        connection.execute("CREATE TABLE llama_entra_conversation_items_by_conversation (x)")
    try:
        await direct.add_items("conv_a", [_message("user", "q1")])
        page = await direct.items("conv_a", order="asc", limit=100)
    finally:
        await _close(direct)
    assert [item["content"] for item in page.items] == ["q1"]
    assert "could not index conversation_items by conversation" in caplog.text

"""``insert_together`` against the active backend's real SQL store (SQLite in a temporary file).

The rows it writes carry the same access-control columns as the store's own ``insert`` under
the same authenticated user, and a failing insert leaves none of the batch behind.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from llama_entra.backends import active_backend
from llama_entra.backends.store_transaction import insert_together

_PACKAGE = {"llama-stack": "llama_stack", "ogx": "ogx"}[active_backend().name]


def _module(name: str) -> Any:
    return importlib.import_module(f"{_PACKAGE}.{name}")


async def _store(path: Path) -> Any:
    datatypes = _module("core.storage.datatypes")
    sqlalchemy_store = _module("core.storage.sqlstore.sqlalchemy_sqlstore")
    authorized = _module("core.storage.sqlstore.authorized_sqlstore")
    column = importlib.import_module(f"{_PACKAGE}_api.internal.sqlstore")
    base = sqlalchemy_store.SqlAlchemySqlStoreImpl(
        datatypes.SqliteSqlStoreConfig(db_path=str(path), pool_pre_ping=False)
    )
    store = authorized.AuthorizedSqlStore(base, [])
    for table in ("parents", "children"):
        schema = {
            "id": column.ColumnDefinition(type=column.ColumnType.STRING, primary_key=True),
            "label": column.ColumnType.STRING,
        }
        await store.create_table(table, schema)
    return store


def _as_user(name: str) -> Any:
    request_headers = _module("core.request_headers")
    user = _module("core.datatypes").User(principal=name, attributes={"roles": ["reader"]})
    return request_headers.request_provider_data_context({}, user)


async def _rows(store: Any, table: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = (await store.sql_store.fetch_all(table=table)).data
    return sorted(rows, key=lambda row: row["id"])


async def test_rows_carry_the_access_columns_the_store_itself_adds(tmp_path: Path) -> None:
    store = await _store(tmp_path / "store.db")
    with _as_user("alice"):
        await store.insert("parents", {"id": "p0", "label": "plain insert"})
        await insert_together(
            store,
            [
                ("parents", {"id": "p1", "label": "together"}),
                ("children", [{"id": "c1", "label": "one"}, {"id": "c2", "label": "two"}]),
            ],
        )
    parents = await _rows(store, "parents")
    children = await _rows(store, "children")
    assert [row["id"] for row in parents] == ["p0", "p1"]
    assert [row["id"] for row in children] == ["c1", "c2"]
    plain = {key: value for key, value in parents[0].items() if key not in ("id", "label")}
    assert plain["owner_principal"] == "alice"
    assert plain["access_attributes"] == {"roles": ["reader"]}
    for row in (parents[1], *children):
        assert {key: value for key, value in row.items() if key not in ("id", "label")} == plain
    await store.sql_store.shutdown()


async def test_a_failing_insert_leaves_none_of_the_batch(tmp_path: Path) -> None:
    store = await _store(tmp_path / "store.db")
    await store.insert("children", {"id": "taken", "label": "already there"})
    with pytest.raises(IntegrityError):
        await insert_together(
            store,
            [
                ("parents", {"id": "p1", "label": "would be orphaned"}),
                ("children", [{"id": "new", "label": "fine"}, {"id": "taken", "label": "dup"}]),
            ],
        )
    assert await _rows(store, "parents") == []
    assert [row["id"] for row in await _rows(store, "children")] == ["taken"]
    await store.sql_store.shutdown()

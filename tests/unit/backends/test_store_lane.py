"""``StoreLane`` against the active backend's real SQL store (SQLite in a temporary file).

Rows it writes carry the same access-control columns as the store's own ``insert`` under the
same authenticated user; a failing transaction leaves none of its rows; its reads answer what
the store's own ``fetch_all`` answers; and it runs beside the store's own connections on the
same file: on the event loop while nobody else writes, else waiting in its thread. Once it
takes the store's statements, the store's own calls answer as before without its engine.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, event, func, select
from sqlalchemy.exc import IntegrityError

from llama_entra.backends import active_backend
from llama_entra.backends.store_lane import StoreLane

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
            "data": column.ColumnType.JSON,
        }
        await store.create_table(table, schema)
    return store


def _as_user(name: str) -> Any:
    request_headers = _module("core.request_headers")
    user = _module("core.datatypes").User(principal=name, attributes={"roles": [name]})
    return request_headers.request_provider_data_context({}, user)


async def _rows(store: Any, table: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = (await store.sql_store.fetch_all(table=table)).data
    return sorted(rows, key=lambda row: row["id"])


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    store = await _store(tmp_path / "store.db")
    yield store
    await store.sql_store.shutdown()


@pytest.fixture
async def lane(store: Any) -> Any:
    lane = StoreLane(store)
    yield lane
    await lane.aclose()


async def test_rows_carry_the_access_columns_the_store_itself_adds(store: Any, lane: Any) -> None:
    with _as_user("alice"):
        await store.insert("parents", {"id": "p0", "label": "plain insert", "data": {"n": 0}})
        await lane.insert(
            [
                ("parents", {"id": "p1", "label": "together", "data": {"n": 1}}),
                ("children", [{"id": "c1", "label": "one"}, {"id": "c2", "label": "two"}]),
            ]
        )
    parents = await _rows(store, "parents")
    children = await _rows(store, "children")
    assert [row["id"] for row in parents] == ["p0", "p1"]
    assert [row["data"] for row in parents] == [{"n": 0}, {"n": 1}]  # JSON as the store writes it
    assert [row["id"] for row in children] == ["c1", "c2"]
    access = ("owner_principal", "access_attributes")
    plain = {key: parents[0][key] for key in access}
    assert plain == {"owner_principal": "alice", "access_attributes": {"roles": ["alice"]}}
    for row in (parents[1], *children):
        assert {key: row[key] for key in access} == plain


async def test_a_failing_transaction_leaves_none_of_its_rows(store: Any, lane: Any) -> None:
    await store.insert("children", {"id": "taken", "label": "already there"})
    with pytest.raises(IntegrityError):
        await lane.insert(
            [
                ("parents", {"id": "p1", "label": "would be orphaned"}),
                ("children", [{"id": "new", "label": "fine"}, {"id": "taken", "label": "dup"}]),
            ]
        )
    assert await _rows(store, "parents") == []
    assert [row["id"] for row in await _rows(store, "children")] == ["taken"]


async def test_reads_answer_what_the_store_answers(store: Any, lane: Any) -> None:
    with _as_user("alice"):
        await store.insert("parents", [{"id": f"a{n}", "label": "alice's"} for n in range(4)])
    with _as_user("bob"):
        await store.insert("parents", [{"id": f"b{n}", "label": "bob's"} for n in range(3)])
    await store.insert("parents", {"id": "open", "label": "no owner"})
    query = {"table": "parents", "order_by": [("id", "desc")], "limit": 4}
    for user in ("alice", "bob"):
        with _as_user(user):
            own = await store.fetch_all(**query)
            through_lane = await lane.fetch_all(**query)
        assert through_lane.data == own.data
        assert through_lane.has_more == own.has_more
        assert {row["owner_principal"] for row in own.data} == {user, ""}  # the filter ran
    with _as_user("bob"):
        found = await lane.fetch_all(table="parents", where={"id": "b1"})
    assert [row["label"] for row in found.data] == ["bob's"]


async def test_a_transaction_runs_on_the_loop_when_it_need_not_wait(store: Any, lane: Any) -> None:
    table = lane.table("children")

    def work(connection: Connection) -> tuple[str, int]:
        connection.execute(table.insert(), [{"id": "x", "label": "on the loop"}])
        count = connection.execute(select(func.count()).select_from(table)).scalar_one()
        return threading.current_thread().name, count

    thread, count = await lane.run(work)
    assert (thread, count) == (threading.current_thread().name, 1)
    assert [row["label"] for row in await _rows(store, "children")] == ["on the loop"]


async def test_it_waits_for_the_stores_own_write_in_its_thread_not_on_the_loop(
    store: Any, lane: Any
) -> None:
    inner = store.sql_store
    table = lane.table("parents")

    def work(connection: Connection) -> str:
        connection.execute(table.insert(), [{"id": "second"}])
        return threading.current_thread().name

    await lane.fetch_all(table="parents")  # the lane is open
    async with inner.async_session() as session:
        await session.execute(inner.metadata.tables["parents"].insert(), {"id": "first"})
        waiting = asyncio.create_task(lane.run(work))
        ticks = 0
        for _ in range(20):  # the loop keeps running while the lane waits for the lock
            await asyncio.sleep(0.005)
            ticks += 1
        assert not waiting.done()
        await session.commit()
    thread = await asyncio.wait_for(waiting, 5)
    assert ticks == 20
    assert thread.startswith("llama-entra-store")
    assert [row["id"] for row in await _rows(store, "parents")] == ["first", "second"]


async def test_an_in_memory_store_is_written_through_its_own_engine() -> None:
    memory = await _store(Path(":memory:"))
    lane = StoreLane(memory)
    await lane.insert([("parents", {"id": "p1", "label": "in memory"})])
    assert [row["label"] for row in await _rows(memory, "parents")] == ["in memory"]
    assert [row["id"] for row in (await lane.fetch_all(table="parents")).data] == ["p1"]
    await lane.aclose()
    await memory.sql_store.shutdown()


@pytest.mark.parametrize("engine_first", [True, False], ids=["engine-made", "engine-later"])
async def test_taken_statements_answer_as_before_without_the_stores_engine(
    tmp_path: Path, engine_first: bool
) -> None:
    """Whether the store made its engine before the lane took its statements or after."""
    store = await _store(tmp_path / "store.db")
    inner = store.sql_store
    await inner.shutdown()  # as a server's store is when its app is built: no engine yet
    if engine_first:
        await inner._ensure_engine()
    lane = StoreLane(store)
    lane.take_statements()
    await inner._ensure_engine()
    statements: list[str] = []
    event.listen(
        inner._engine.sync_engine,
        "before_cursor_execute",
        lambda _conn, _cursor, statement, *_rest: statements.append(statement),
    )
    async with inner._engine.begin() as connection:  # the probe sees the engine's statements
        await connection.exec_driver_sql("SELECT 1")
    assert statements == ["SELECT 1"]
    statements.clear()
    with _as_user("alice"):
        await store.insert("parents", [{"id": "p1", "label": "one"}, {"id": "p2", "label": "two"}])
        await store.upsert("parents", {"id": "p2", "label": "again"}, conflict_columns=["id"])
        await store.update("parents", {"label": "changed"}, where={"id": "p1"})
        await store.delete("parents", where={"id": "p2"})
        one = await store.fetch_one("parents", where={"id": "p1"})
        listed = await store.fetch_all(table="parents")
    assert statements == []
    assert one is not None and one["label"] == "changed"
    assert one["owner_principal"] == "alice"
    assert [row["id"] for row in listed.data] == ["p1"]
    await lane.aclose()
    await inner.shutdown()

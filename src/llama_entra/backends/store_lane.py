"""A Llama Stack SQL store's statements, without SQLAlchemy's asyncio layer on SQLite.

Both backends keep their SQL stores behind SQLAlchemy's asyncio layer. On PostgreSQL that is
asyncpg on the event loop. On SQLite it is aiosqlite: every statement, the commit and the
connection's reset each go to aiosqlite's thread and back, three to five thread switches per
store call, each waiting for a core on a loaded machine (measured: 1-3 ms a call alone, 4-6 ms
under load, for well under a millisecond of SQLite work). A ``StoreLane`` runs the same
SQLAlchemy statements, on the same tables, through a synchronous engine on the same database
file, with ``SqliteRunner``: on the event loop when SQLite need not wait for another writer,
else in a worker thread of its own.

- ``run(work)`` runs ``work(connection)`` in one transaction (committed when it returns, rolled
  back when it raises; on SQLite it may run twice, see ``sqlite_runner``). On PostgreSQL (and
  an in-memory SQLite store, which a second engine could not share) it runs on the store's own
  async engine (``AsyncConnection.run_sync``): the same code either way.
- ``insert(writes)`` inserts rows into several tables in one transaction.
- ``prepare(table, rows)`` adds the access-control columns (owner, attributes, tenant) the
  store's own ``insert`` adds: that ``insert`` runs on a copy of the store whose inner store
  only hands the rows back, so each backend's rules stay its own.
- ``fetch_all(...)`` is the store's own ``fetch_all`` (its access-control filter and paging
  included) with, on SQLite, each statement executed through the runner (``_LaneSession``).
- ``take_statements()`` sends every call of the store itself (its ``insert``, ``upsert``,
  ``update``, ``delete``, ``fetch_one``, ``fetch_all``: one statement each, or two reads) the
  same way on SQLite; elsewhere they keep the store's own session. A Llama Stack server's
  conversations use it: through aiosqlite, a transaction keeps SQLite's write lock across
  several turns of a busy event loop, and under a few hundred concurrent streams the writers
  queued behind it failed after the 5-second busy timeout ("database is locked").

SQLite serialises writers across connections; the lane's connections use the store's own
settings (WAL, ``synchronous=NORMAL``; the thread's waits up to 5 s), so a lane write and a
Llama Stack write wait for each other like two connections of the store's own pool, never on
the event loop. A commit is as durable as the store's own.

It relies on the SQLAlchemy store of both backends (llama-stack 0.7.3, frozen; OGX pinned by
``uv.lock``): ``AuthorizedSqlStore.sql_store`` is a ``SqlAlchemySqlStoreImpl`` with
``_ensure_engine()``, ``_engine``, ``async_session`` and ``metadata.tables``. The end-to-end
suite runs through it on both.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import URL, Connection, Engine, Table, create_engine, event
from sqlalchemy.engine import Result

from llama_entra.storage.sqlite_runner import SqliteRunner, configure

__all__ = ["Rows", "StoreLane"]

Rows = Mapping[str, Any] | Sequence[Mapping[str, Any]]


class _Collector:
    """Stands in for the inner store while the authorized store prepares rows."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.prepared: list[dict[str, Any]] = []

    async def insert(self, table: str, data: Rows) -> None:
        rows = [data] if isinstance(data, Mapping) else data
        self.prepared = [dict(row) for row in rows]


class _LaneSession:
    """What the inner store's ``fetch_all`` sees as its session: each statement one lane call.

    Only for single-statement reads and writes: each ``execute`` is a transaction of its own.
    """

    def __init__(self, lane: StoreLane) -> None:
        self._lane = lane

    async def __aenter__(self) -> _LaneSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def execute(self, statement: Any, params: Any = None) -> Result[Any]:
        def work(connection: Connection) -> Result[Any]:
            result = connection.execute(statement, params)
            return result.freeze()() if result.returns_rows else result  # rows outlive it

        return await self._lane.run(work)

    async def commit(self) -> None:
        return None


def _sqlite_engine(url: URL, busy_timeout: float) -> Engine:
    """A synchronous engine on the store's SQLite file, set up like the store's own."""
    engine = create_engine(url.set(drivername="sqlite"), connect_args={"timeout": busy_timeout})
    event.listen(engine, "connect", lambda connection, _record: configure(connection, busy_timeout))
    return engine


def _checkpoint(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")


def _in_transaction[T](engine: Engine, work: Callable[[Connection], T]) -> T:
    with engine.begin() as connection:
        return work(connection)


class StoreLane:
    """One Llama Stack SQL store (an ``AuthorizedSqlStore``), called as the module describes."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self._inner = store.sql_store
        self._reader: Any = None  # the store, reading through the lane (on SQLite)
        self._runner: SqliteRunner[Engine] | None = None

    def table(self, name: str) -> Table:
        """The store's SQLAlchemy table ``name`` (to build a statement on)."""
        table: Table = self._inner.metadata.tables[name]
        return table

    async def prepare(self, table: str, rows: Rows) -> list[dict[str, Any]]:
        """``rows`` with the access-control columns the store's ``insert`` adds."""
        collector = _Collector(self._inner.config)
        staging = copy.copy(self._store)
        staging.sql_store = collector
        await staging.insert(table, rows)
        return collector.prepared

    async def insert(self, writes: Sequence[tuple[str, Rows]]) -> None:
        """Insert ``(table, rows)`` pairs, with their access-control columns, in one transaction."""
        prepared = [(self.table(name), await self.prepare(name, rows)) for name, rows in writes]

        def work(connection: Connection) -> None:
            for table, rows in prepared:
                if rows:
                    connection.execute(table.insert(), rows)

        await self.run(work)

    async def run[T](self, work: Callable[[Connection], T]) -> T:
        """``work(connection)`` in one transaction: committed if it returns, else rolled back."""
        await self._ready()
        if self._runner is None:  # not SQLite: the store's own engine (made anew after a reset)
            await self._inner._ensure_engine()
            async with self._inner._engine.begin() as connection:
                result: T = await connection.run_sync(work)
                return result
        return await self._runner.run(lambda engine: _in_transaction(engine, work))

    async def fetch_all(self, **arguments: Any) -> Any:
        """The store's ``fetch_all(**arguments)`` (a ``PaginatedResponse``), through the lane."""
        await self._ready()
        return await self._reader.fetch_all(**arguments)

    def take_statements(self) -> None:
        """Route the store's own calls through the lane on SQLite (see the module docstring).

        For stores whose calls are each one statement (both backends' SQLAlchemy store): a
        multi-statement transaction on the store's session would become one per statement.
        The store makes its session factory with its engine, on first use (and again after a
        shutdown): the lane's replaces it each time.
        """
        inner, lane = self._inner, self
        own: list[Any] = [inner.async_session]  # the store's own session factory

        class _Switch:
            """The store's session: the lane's on SQLite, else the store's own."""

            async def __aenter__(self) -> Any:
                await lane._ready()
                self.session: Any = _LaneSession(lane) if lane._runner is not None else own[0]()
                return await self.session.__aenter__()

            async def __aexit__(self, *exc_info: object) -> Any:
                return await self.session.__aexit__(*exc_info)

        ensure_engine = inner._ensure_engine

        async def ensure_then_switch() -> None:
            await ensure_engine()
            if inner.async_session is not _Switch:
                own[0], inner.async_session = inner.async_session, _Switch

        inner._ensure_engine = ensure_then_switch
        if inner.async_session is not None:
            own[0], inner.async_session = inner.async_session, _Switch

    async def aclose(self) -> None:
        """Close the lane's connections (the store itself stays open)."""
        runner, self._runner = self._runner, None
        self._reader = None
        if runner is not None:
            await runner.aclose()

    async def _ready(self) -> None:
        if self._reader is not None:
            return
        await self._inner._ensure_engine()  # the store's tables exist once this returns
        if self._reader is not None:  # another call got here first
            return
        url = self._inner._engine.url
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            self._runner = SqliteRunner(
                lambda busy_timeout: _sqlite_engine(url, busy_timeout),
                Engine.dispose,
                _checkpoint,
                "llama-entra-store",
            )
            inner = copy.copy(self._inner)
            inner.async_session = lambda: _LaneSession(self)
            reader = copy.copy(self._store)
            reader.sql_store = inner
            self._reader = reader
        else:
            self._reader = self._store

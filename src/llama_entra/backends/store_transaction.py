"""Several statements against one Llama Stack SQL store, committed as one transaction.

Llama Stack's conversations service writes a new conversation's row and its items with two
store calls, and OGX appends items after a separate read of the next sort order: each call is
a session of its own, with its own round of hops to the database driver (for SQLite,
aiosqlite's thread). ``store_transaction`` runs them in one session. Inserted rows get the
access-control columns (owner, access attributes, tenant) exactly as the store's own
``insert`` would add them: that ``insert`` runs on a copy of the store whose inner store only
hands the prepared rows back, so each backend's rules stay its own.

It relies on the SQLAlchemy store of both backends (llama-stack 0.7.3, frozen; OGX pinned by
``uv.lock``): ``AuthorizedSqlStore.sql_store`` is a ``SqlAlchemySqlStoreImpl`` with
``_ensure_engine()``, ``async_session`` and ``metadata.tables``. The end-to-end suite runs
through it on both.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Executable

__all__ = ["Rows", "StoreTransaction", "insert_together", "store_transaction"]

Rows = Mapping[str, Any] | Sequence[Mapping[str, Any]]


class _Collector:
    """Stands in for the inner store while the authorized store prepares rows."""

    def __init__(self, inner: Any) -> None:
        self.config = inner.config
        self.prepared: Rows = []

    async def insert(self, table: str, data: Rows) -> None:
        self.prepared = data


class StoreTransaction:
    """One open session of the store: reads and inserts, committed together on exit."""

    def __init__(self, store: Any, session: AsyncSession) -> None:
        self._inner = store.sql_store
        self._collector = _Collector(self._inner)
        self._staging = copy.copy(store)
        self._staging.sql_store = self._collector
        self._session = session

    def table(self, name: str) -> Table:
        """The store's SQLAlchemy table ``name`` (to build a statement on)."""
        table: Table = self._inner.metadata.tables[name]
        return table

    async def scalar(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Any:
        """The first column of the first row ``statement`` returns (None for no row)."""
        return (await self._session.execute(statement, params)).scalar()

    async def insert(self, table: str, rows: Rows) -> None:
        """Insert ``rows`` with the access-control columns the store's ``insert`` adds."""
        await self._staging.insert(table, rows)
        await self._session.execute(self.table(table).insert(), self._collector.prepared)


@asynccontextmanager
async def store_transaction(store: Any) -> AsyncIterator[StoreTransaction]:
    """A ``StoreTransaction`` on ``store`` (an ``AuthorizedSqlStore``); all or nothing."""
    inner = store.sql_store
    await inner._ensure_engine()
    async with inner.async_session() as session:
        yield StoreTransaction(store, session)
        await session.commit()


async def insert_together(store: Any, writes: Sequence[tuple[str, Rows]]) -> None:
    """Insert ``(table, rows)`` pairs into ``store`` in one transaction."""
    async with store_transaction(store) as transaction:
        for table, rows in writes:
            await transaction.insert(table, rows)

"""Quota counts in the conversation index's database, changed atomically.

One row per limiter and subject (the caller's user id, or "" for a cluster limiter): what is
left and the start of the period it is for. ``settle`` brings a request's rows to the current
period and spends tokens from them in one transaction that holds the rows' write locks (SQLite's
``BEGIN IMMEDIATE``; PostgreSQL's row locks, taken in one order so two requests never deadlock),
so concurrent requests on any number of replicas never lose an update and a period turns once.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Protocol

from llama_entra.conversations.index import SqliteConversationIndex
from llama_entra.quotas.limits import Count, Limiter

__all__ = ["QuotaStore", "SqliteQuotaStore", "rows_of", "settled"]

_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS quotas (
    limiter TEXT NOT NULL, subject TEXT NOT NULL, available INTEGER NOT NULL,
    since REAL NOT NULL, updated_at REAL NOT NULL, PRIMARY KEY (limiter, subject)
);
"""


class QuotaStore(Protocol):
    """Where the counts are kept."""

    async def settle(
        self, limiters: Sequence[Limiter], user_id: str, spend: int, now: float
    ) -> dict[str, Count]:
        """Each limiter's count for ``user_id`` at ``now``, after spending ``spend`` tokens."""


def rows_of(limiters: Sequence[Limiter], user_id: str) -> list[tuple[Limiter, str]]:
    """Each limiter with its subject, in the one order every transaction locks them in."""
    return sorted(
        ((limiter, limiter.subject(user_id)) for limiter in limiters),
        key=lambda row: (row[0].name, row[1]),
    )


def settled(limiter: Limiter, stored: Count | None, spend: int, now: float) -> Count:
    """``stored`` brought to ``now``'s period, less ``spend``."""
    count = limiter.current(stored, now)
    return Count(count.available - spend, count.since) if spend else count


class SqliteQuotaStore:
    """The ``quotas`` table of the SQLite conversation index's file."""

    def __init__(self, index: SqliteConversationIndex) -> None:
        self.index = index
        self._ready = False

    async def settle(
        self, limiters: Sequence[Limiter], user_id: str, spend: int, now: float
    ) -> dict[str, Count]:
        """Each limiter's count for ``user_id`` at ``now``, after spending ``spend`` tokens."""

        def work(db: sqlite3.Connection) -> dict[str, Count]:
            counts: dict[str, Count] = {}
            with db:
                db.execute("BEGIN IMMEDIATE")
                if not self._ready:
                    db.execute(_SQLITE_SCHEMA)
                for limiter, subject in rows_of(limiters, user_id):
                    row = db.execute(
                        "SELECT available, since FROM quotas WHERE limiter = ? AND subject = ?",
                        (limiter.name, subject),
                    ).fetchone()
                    stored = Count(*row) if row else None
                    count = settled(limiter, stored, spend, now)
                    if count != stored:
                        db.execute(
                            "INSERT INTO quotas VALUES (?, ?, ?, ?, ?) ON CONFLICT "
                            "(limiter, subject) DO UPDATE SET available = excluded.available, "
                            "since = excluded.since, updated_at = excluded.updated_at",
                            (limiter.name, subject, count.available, count.since, time.time()),
                        )
                    counts[limiter.name] = count
            self._ready = True
            return counts

        return await self.index.run(work)

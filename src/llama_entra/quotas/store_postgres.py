"""Quota counts in the PostgreSQL database of the conversation index, shared by replicas.

Table ``llama_entra_quotas``, created on first use under a transaction-level advisory lock (as
the index creates its own). A request's rows are made if missing (``ON CONFLICT DO NOTHING``),
then locked with ``SELECT ... FOR UPDATE`` in ``rows_of``'s order, brought to the current period,
spent from and written back in the same transaction: two replicas never both reset a period or
lose each other's spending.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence

import asyncpg

from llama_entra.conversations.index_postgres import PostgresConversationIndex
from llama_entra.quotas.limits import Count, Limiter
from llama_entra.quotas.store import rows_of, settled

__all__ = ["PostgresQuotaStore"]

_SCHEMA_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"llama-entra:quotas").digest()[:8], "big", signed=True
)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS llama_entra_quotas (
    limiter TEXT NOT NULL, subject TEXT NOT NULL, available BIGINT NOT NULL,
    since DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (limiter, subject)
);
"""


class PostgresQuotaStore:
    """The ``llama_entra_quotas`` table of the PostgreSQL conversation index's database."""

    def __init__(self, index: PostgresConversationIndex) -> None:
        self.index = index
        self._ready = False

    async def settle(
        self, limiters: Sequence[Limiter], user_id: str, spend: int, now: float
    ) -> dict[str, Count]:
        """Each limiter's count for ``user_id`` at ``now``, after spending ``spend`` tokens."""

        async def work(db: asyncpg.Connection) -> dict[str, Count]:
            counts: dict[str, Count] = {}
            async with db.transaction():
                if not self._ready:
                    await db.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK_KEY)
                    await db.execute(_SCHEMA)
                rows = rows_of(limiters, user_id)
                for limiter, subject in rows:
                    fresh = limiter.current(None, now)
                    await db.execute(
                        "INSERT INTO llama_entra_quotas VALUES ($1, $2, $3, $4, $5) "
                        "ON CONFLICT (limiter, subject) DO NOTHING",
                        limiter.name,
                        subject,
                        fresh.available,
                        fresh.since,
                        time.time(),
                    )
                for limiter, subject in rows:
                    row = await db.fetchrow(
                        "SELECT available, since FROM llama_entra_quotas "
                        "WHERE limiter = $1 AND subject = $2 FOR UPDATE",
                        limiter.name,
                        subject,
                    )
                    stored = Count(int(row["available"]), float(row["since"]))
                    count = settled(limiter, stored, spend, now)
                    if count != stored:
                        await db.execute(
                            "UPDATE llama_entra_quotas SET available = $3, since = $4, "
                            "updated_at = $5 WHERE limiter = $1 AND subject = $2",
                            limiter.name,
                            subject,
                            count.available,
                            count.since,
                            time.time(),
                        )
                    counts[limiter.name] = count
            self._ready = True
            return counts

        return await self.index.run(work)

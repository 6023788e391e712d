"""The conversation index in a PostgreSQL database every replica shares.

Same rows as the SQLite index (``conversation_index``), in tables ``llama_entra_conversations``
and ``llama_entra_turns`` (callers' feedback in ``llama_entra_feedback``), so
``GET /v1/conversations`` on any replica lists every conversation of the caller, whichever
replica created it. Tables are created on first use, under a
transaction-level advisory lock, because concurrent ``CREATE TABLE IF NOT EXISTS`` on an empty
database fails in all but one session. Turns of one conversation are numbered under a lock of
their own, so two replicas recording turns at once never take the same number.

Connections come from a small pool opened on first use: the service starts with the database
down. A lost database is a ``DatabaseUnavailableError`` (503 naming it); a pooled connection
that the server closed (restart, idle timeout) is replaced and the call tried once more.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import astuple

import asyncpg

from llama_entra.conversations.index import Feedback, IndexedConversation, IndexedTurn
from llama_entra.errors import DatabaseUnavailableError
from llama_entra.storage.database import DatabaseTarget, open_pool, unavailable

__all__ = ["PostgresConversationIndex"]

_SCHEMA_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"llama-entra:conversation-index").digest()[:8], "big", signed=True
)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS llama_entra_conversations (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
    last_message_at DOUBLE PRECISION, message_count INTEGER NOT NULL DEFAULT 0,
    last_used_model TEXT, last_used_provider TEXT, topic_summary TEXT
);
CREATE INDEX IF NOT EXISTS llama_entra_conversations_owner ON llama_entra_conversations (owner);
CREATE TABLE IF NOT EXISTS llama_entra_turns (
    conversation_id TEXT NOT NULL, seq INTEGER NOT NULL, model TEXT NOT NULL,
    provider TEXT NOT NULL, started_at DOUBLE PRECISION NOT NULL,
    completed_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (conversation_id, seq)
);
CREATE TABLE IF NOT EXISTS llama_entra_feedback (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, conversation_id TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL, sentiment INTEGER, user_feedback TEXT,
    categories TEXT, user_question TEXT NOT NULL, llm_response TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS llama_entra_feedback_owner ON llama_entra_feedback (owner);
"""
_FEEDBACK_COLUMNS = (
    "id, owner, conversation_id, created_at, sentiment, user_feedback, categories, "
    "user_question, llm_response"
)
_COLUMNS = (
    "id, owner, created_at, last_message_at, message_count, last_used_model, "
    "last_used_provider, topic_summary"
)
# A closed pooled connection fails before its statement runs: safe to run the call again.
_STALE_CONNECTION = (asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError)


class PostgresConversationIndex:
    """The index in ``target``; every replica given the same database sees the same rows."""

    def __init__(self, target: DatabaseTarget) -> None:
        self.target = target
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        # Told when the database is lost (the client holder, when this is Llama Stack's own
        # database: its stores must be restarted once it answers again).
        self.on_unavailable: Callable[[DatabaseUnavailableError], None] | None = None

    async def _ready_pool(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                pool = await open_pool(self.target)
                try:
                    async with pool.acquire() as connection, connection.transaction():
                        await connection.execute(
                            "SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK_KEY
                        )
                        await connection.execute(_SCHEMA)
                except BaseException:
                    await pool.close()
                    raise
                self._pool = pool
            return self._pool

    async def _run[T](self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        for attempt in (1, 2):
            try:
                pool = await self._ready_pool()
                async with pool.acquire() as connection:
                    return await work(connection)
            except _STALE_CONNECTION as exc:
                if attempt == 1:
                    continue
                raise self._lost(exc) from exc
            except (OSError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError) as exc:
                raise self._lost(exc) from exc
            except DatabaseUnavailableError as error:  # the pool could not be opened
                self._report(error)
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def run[T](self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """``work`` on a pooled connection, for the other tables kept here (token quotas).

        A connection the server had closed is replaced and ``work`` run again; a lost database
        is a ``DatabaseUnavailableError``.
        """
        return await self._run(work)

    def _lost(self, exc: BaseException) -> DatabaseUnavailableError:
        error = unavailable(exc, self.target)
        self._report(error)
        return error

    def _report(self, error: DatabaseUnavailableError) -> None:
        if self.on_unavailable is not None:
            self.on_unavailable(error)

    async def add(
        self,
        conversation_id: str,
        owner: str,
        created_at: float,
        first_turn: IndexedTurn | None = None,
    ) -> None:
        """Record a new conversation of ``owner`` (with its first turn, in one transaction).

        A second add of the same id adds only the turn.
        """

        async def work(db: asyncpg.Connection) -> None:
            async with db.transaction():
                await db.execute(
                    "INSERT INTO llama_entra_conversations (id, owner, created_at) "
                    "VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
                    conversation_id,
                    owner,
                    created_at,
                )
                if first_turn is not None:
                    await _insert_turn(db, conversation_id, first_turn)

        await self._run(work)

    async def add_turn(self, conversation_id: str, turn: IndexedTurn) -> None:
        """Record one finished turn (counts it, remembers its model and times)."""

        async def work(db: asyncpg.Connection) -> None:
            async with db.transaction():
                await _insert_turn(db, conversation_id, turn)

        await self._run(work)

    async def set_topic(self, conversation_id: str, summary: str) -> None:
        """Set the topic summary."""

        async def work(db: asyncpg.Connection) -> None:
            await db.execute(
                "UPDATE llama_entra_conversations SET topic_summary = $2 WHERE id = $1",
                conversation_id,
                summary,
            )

        await self._run(work)

    async def remove(self, conversation_id: str) -> None:
        """Forget a conversation and its turns."""

        async def work(db: asyncpg.Connection) -> None:
            async with db.transaction():
                await db.execute(
                    "DELETE FROM llama_entra_turns WHERE conversation_id = $1", conversation_id
                )
                await db.execute(
                    "DELETE FROM llama_entra_conversations WHERE id = $1", conversation_id
                )

        await self._run(work)

    async def of_owner(self, owner: str) -> list[IndexedConversation]:
        """The owner's conversations, most recently used first."""

        async def work(db: asyncpg.Connection) -> list[IndexedConversation]:
            rows = await db.fetch(
                f"SELECT {_COLUMNS} FROM llama_entra_conversations WHERE owner = $1 "  # noqa: S608 - constant columns
                "ORDER BY COALESCE(last_message_at, created_at) DESC",
                owner,
            )
            return [IndexedConversation(*row) for row in rows]

        return await self._run(work)

    async def get(self, conversation_id: str) -> IndexedConversation | None:
        """One conversation's row, if this index has it."""

        async def work(db: asyncpg.Connection) -> IndexedConversation | None:
            row = await db.fetchrow(
                f"SELECT {_COLUMNS} FROM llama_entra_conversations WHERE id = $1",  # noqa: S608 - constant columns
                conversation_id,
            )
            return IndexedConversation(*row) if row else None

        return await self._run(work)

    async def turns(self, conversation_id: str) -> list[IndexedTurn]:
        """The recorded turns, oldest first."""

        async def work(db: asyncpg.Connection) -> list[IndexedTurn]:
            rows = await db.fetch(
                "SELECT model, provider, started_at, completed_at FROM llama_entra_turns "
                "WHERE conversation_id = $1 ORDER BY seq",
                conversation_id,
            )
            return [IndexedTurn(*row) for row in rows]

        return await self._run(work)

    async def add_feedback(self, feedback: Feedback) -> None:
        """Store one feedback record."""

        async def work(db: asyncpg.Connection) -> None:
            await db.execute(
                f"INSERT INTO llama_entra_feedback ({_FEEDBACK_COLUMNS}) "  # noqa: S608 - constant columns
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                *astuple(feedback),
            )

        await self._run(work)

    async def feedback_of(self, owner: str) -> list[Feedback]:
        """``owner``'s feedback, oldest first."""

        async def work(db: asyncpg.Connection) -> list[Feedback]:
            rows = await db.fetch(
                f"SELECT {_FEEDBACK_COLUMNS} FROM llama_entra_feedback WHERE owner = $1 "  # noqa: S608 - constant columns
                "ORDER BY created_at",
                owner,
            )
            return [Feedback(*row) for row in rows]

        return await self._run(work)

    async def aclose(self) -> None:
        """Close the pool (in-flight calls finish first)."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()


async def _insert_turn(db: asyncpg.Connection, conversation_id: str, turn: IndexedTurn) -> None:
    """Number and count one turn; inside the caller's transaction."""
    await db.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", conversation_id)
    await db.execute(
        "INSERT INTO llama_entra_turns SELECT $1, COALESCE(MAX(seq), -1) + 1, "
        "$2, $3, $4, $5 FROM llama_entra_turns WHERE conversation_id = $1",
        conversation_id,
        turn.model,
        turn.provider,
        turn.started_at,
        turn.completed_at,
    )
    await db.execute(
        "UPDATE llama_entra_conversations SET message_count = message_count + 1, "
        "last_message_at = $2, last_used_model = $3, last_used_provider = $4 WHERE id = $1",
        conversation_id,
        turn.completed_at,
        turn.model,
        turn.provider,
    )

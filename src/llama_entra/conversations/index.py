"""An index of conversations per owner, for listing them; here its contract and SQLite form.

Neither Llama Stack 0.7.3 nor OGX can list conversations (only create, retrieve, update,
delete and list one conversation's items), so llama-entra keeps one row per conversation it
created: owner, times, turn count, last model and provider, topic summary, and one row per
turn (model, provider, start and end time). The conversation's items stay in Llama Stack's
store, and the owner is also kept in the conversation's own metadata, which is what access
checks read; this index only answers "which conversations does this caller have". The same
database keeps callers' feedback on answers (``Feedback``, ``POST /v1/feedback``): rows no
route reads back.

``SqliteConversationIndex`` keeps a file in the service's state dir: it survives restarts and
the workers of one service share it (SQLite locks it), but separate replicas each list only the
conversations created through them. Replicas on one PostgreSQL database use
``PostgresConversationIndex`` (``conversation_index_postgres``) instead.

The SQLite index keeps its connections per process, opened and given its schema on first use
(not per call: opening a connection and running the schema script cost more than the query
itself), and runs each call on the event loop unless it would wait for a lock, then in a
worker thread (``sqlite_runner``). WAL with ``synchronous=NORMAL``: a commit is safe
from a crash of the process at once, and from a power loss once the next checkpoint syncs the
WAL; the turns themselves are in Llama Stack's store, this index only lists them (a fsync per
commit cost 5-20 ms per query on a loaded disk).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Protocol

from llama_entra.storage.sqlite_runner import SqliteRunner, configure

__all__ = [
    "ConversationIndex",
    "Feedback",
    "IndexedConversation",
    "IndexedTurn",
    "SqliteConversationIndex",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, created_at REAL NOT NULL,
    last_message_at REAL, message_count INTEGER NOT NULL DEFAULT 0,
    last_used_model TEXT, last_used_provider TEXT, topic_summary TEXT
);
CREATE INDEX IF NOT EXISTS conversations_owner ON conversations (owner);
CREATE TABLE IF NOT EXISTS turns (
    conversation_id TEXT NOT NULL, seq INTEGER NOT NULL, model TEXT NOT NULL,
    provider TEXT NOT NULL, started_at REAL NOT NULL, completed_at REAL NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
CREATE TABLE IF NOT EXISTS feedback (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, conversation_id TEXT NOT NULL,
    created_at REAL NOT NULL, sentiment INTEGER, user_feedback TEXT, categories TEXT,
    user_question TEXT NOT NULL, llm_response TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_owner ON feedback (owner);
"""


@dataclass(frozen=True, slots=True)
class IndexedConversation:
    """One conversation's row."""

    id: str
    owner: str
    created_at: float
    last_message_at: float | None
    message_count: int
    last_used_model: str | None
    last_used_provider: str | None
    topic_summary: str | None


@dataclass(frozen=True, slots=True)
class IndexedTurn:
    """What is known of one turn besides its messages."""

    model: str
    provider: str
    started_at: float
    completed_at: float


@dataclass(frozen=True, slots=True)
class Feedback:
    """A caller's feedback on an answer (``POST /v1/feedback``), as stored.

    ``categories`` is kept as JSON text (a list of category names), the same in both databases.
    """

    id: str
    owner: str
    conversation_id: str
    created_at: float
    sentiment: int | None
    user_feedback: str | None
    categories: str | None
    user_question: str
    llm_response: str


class ConversationIndex(Protocol):
    """What the conversation store needs of an index."""

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

    async def add_turn(self, conversation_id: str, turn: IndexedTurn) -> None:
        """Record one finished turn (counts it, remembers its model and times)."""

    async def set_topic(self, conversation_id: str, summary: str) -> None:
        """Set the topic summary."""

    async def remove(self, conversation_id: str) -> None:
        """Forget a conversation and its turns."""

    async def of_owner(self, owner: str) -> list[IndexedConversation]:
        """The owner's conversations, most recently used first."""

    async def get(self, conversation_id: str) -> IndexedConversation | None:
        """One conversation's row, if this index has it."""

    async def turns(self, conversation_id: str) -> list[IndexedTurn]:
        """The recorded turns, oldest first."""

    async def add_feedback(self, feedback: Feedback) -> None:
        """Store one feedback record (no route reads it back; operators query the table)."""

    async def feedback_of(self, owner: str) -> list[Feedback]:
        """``owner``'s feedback, oldest first (only ``owner``'s: for operators and tests)."""

    async def aclose(self) -> None:
        """Release connections."""


class SqliteConversationIndex:
    """The index file, through a ``SqliteRunner`` (no waiting for a lock on the loop)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._runner: SqliteRunner[sqlite3.Connection] = SqliteRunner(
            self._connect, sqlite3.Connection.close, _checkpoint, "llama-entra-index"
        )

    async def aclose(self) -> None:
        """Close the connections (the thread's once its running call finishes)."""
        await self._runner.aclose()

    def _connect(self, busy_timeout: float) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(
            self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            configure(connection, busy_timeout)
            connection.executescript(_SCHEMA)
        except BaseException:
            connection.close()
            raise
        return connection

    async def _run[T](self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await self._runner.run(work)

    async def run[T](self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work`` on this database, for the other tables kept in it (token quotas).

        ``work`` may run twice (``SqliteRunner``): it must only touch the database.
        """
        return await self._runner.run(work)

    def close(self) -> None:
        """Close the connections (the next call opens new ones)."""
        self._runner.close()

    async def add(
        self,
        conversation_id: str,
        owner: str,
        created_at: float,
        first_turn: IndexedTurn | None = None,
    ) -> None:
        """Record a new conversation of ``owner`` (with its first turn, in one transaction)."""

        def work(db: sqlite3.Connection) -> None:
            with db:
                db.execute("BEGIN IMMEDIATE")
                db.execute(
                    "INSERT OR IGNORE INTO conversations (id, owner, created_at) VALUES (?, ?, ?)",
                    (conversation_id, owner, created_at),
                )
                if first_turn is not None:
                    _add_turn(db, conversation_id, first_turn)

        await self._run(work)

    async def add_turn(self, conversation_id: str, turn: IndexedTurn) -> None:
        """Record one finished turn (counts it, remembers its model and times)."""

        def work(db: sqlite3.Connection) -> None:
            with db:  # one transaction
                db.execute("BEGIN IMMEDIATE")
                _add_turn(db, conversation_id, turn)

        await self._run(work)

    async def set_topic(self, conversation_id: str, summary: str) -> None:
        """Set the topic summary."""
        await self._run(
            lambda db: db.execute(
                "UPDATE conversations SET topic_summary = ? WHERE id = ?",
                (summary, conversation_id),
            )
        )

    async def remove(self, conversation_id: str) -> None:
        """Forget a conversation and its turns."""

        def work(db: sqlite3.Connection) -> None:
            with db:
                db.execute("BEGIN IMMEDIATE")
                db.execute("DELETE FROM turns WHERE conversation_id = ?", (conversation_id,))
                db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

        await self._run(work)

    async def of_owner(self, owner: str) -> list[IndexedConversation]:
        """The owner's conversations, most recently used first."""
        rows = await self._run(
            lambda db: db.execute(
                "SELECT id, owner, created_at, last_message_at, message_count, "
                "last_used_model, last_used_provider, topic_summary FROM conversations "
                "WHERE owner = ? ORDER BY COALESCE(last_message_at, created_at) DESC",
                (owner,),
            ).fetchall()
        )
        return [IndexedConversation(*row) for row in rows]

    async def get(self, conversation_id: str) -> IndexedConversation | None:
        """One conversation's row, if this index has it."""
        row = await self._run(
            lambda db: db.execute(
                "SELECT id, owner, created_at, last_message_at, message_count, "
                "last_used_model, last_used_provider, topic_summary FROM conversations "
                "WHERE id = ?",
                (conversation_id,),
            ).fetchone()
        )
        return IndexedConversation(*row) if row else None

    async def turns(self, conversation_id: str) -> list[IndexedTurn]:
        """The recorded turns, oldest first."""
        rows = await self._run(
            lambda db: db.execute(
                "SELECT model, provider, started_at, completed_at FROM turns "
                "WHERE conversation_id = ? ORDER BY seq",
                (conversation_id,),
            ).fetchall()
        )
        return [IndexedTurn(*row) for row in rows]

    async def add_feedback(self, feedback: Feedback) -> None:
        """Store one feedback record."""
        await self._run(
            lambda db: db.execute(
                f"INSERT INTO feedback ({_FEEDBACK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608 - constant columns
                astuple(feedback),
            )
        )

    async def feedback_of(self, owner: str) -> list[Feedback]:
        """``owner``'s feedback, oldest first."""
        rows = await self._run(
            lambda db: db.execute(
                f"SELECT {_FEEDBACK_COLUMNS} FROM feedback WHERE owner = ? ORDER BY created_at",  # noqa: S608 - constant columns
                (owner,),
            ).fetchall()
        )
        return [Feedback(*row) for row in rows]


_FEEDBACK_COLUMNS = (
    "id, owner, conversation_id, created_at, sentiment, user_feedback, categories, "
    "user_question, llm_response"
)


def _checkpoint(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA wal_checkpoint(PASSIVE)")


def _add_turn(db: sqlite3.Connection, conversation_id: str, turn: IndexedTurn) -> None:
    db.execute(
        "INSERT INTO turns SELECT ?, COALESCE(MAX(seq), -1) + 1, ?, ?, ?, ? "
        "FROM turns WHERE conversation_id = ?",
        (
            conversation_id,
            turn.model,
            turn.provider,
            turn.started_at,
            turn.completed_at,
            conversation_id,
        ),
    )
    db.execute(
        "UPDATE conversations SET message_count = message_count + 1, "
        "last_message_at = ?, last_used_model = ?, last_used_provider = ? "
        "WHERE id = ?",
        (turn.completed_at, turn.model, turn.provider, conversation_id),
    )

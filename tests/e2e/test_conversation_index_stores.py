"""The conversation index, SQLite and PostgreSQL, against one contract (real servers).

The PostgreSQL index runs on the session's real PostgreSQL server (``support.postgres``); two
index objects on one database stand for two replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from llama_entra.conversations.index import (
    ConversationIndex,
    Feedback,
    IndexedTurn,
    SqliteConversationIndex,
)
from llama_entra.conversations.index_postgres import PostgresConversationIndex
from llama_entra.errors import DatabaseUnavailableError
from llama_entra.storage.database import DatabaseTarget
from support.postgres import PostgresServer
from support.service import free_port


def _target(postgres: PostgresServer, database: str) -> DatabaseTarget:
    return DatabaseTarget(
        postgres.host, postgres.port, database, postgres.user, SecretStr(postgres.password)
    )


@pytest.fixture(params=["sqlite", "postgres"])
async def index(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ConversationIndex]:
    """Each kind of index, empty."""
    made: ConversationIndex
    if request.param == "sqlite":
        made = SqliteConversationIndex(tmp_path / "conversations.sqlite3")
    else:
        postgres: PostgresServer = request.getfixturevalue("postgres")
        database = request.getfixturevalue("postgres_db")
        made = PostgresConversationIndex(_target(postgres, database))
    try:
        yield made
    finally:
        await made.aclose()


def _turn(model: str, at: float) -> IndexedTurn:
    return IndexedTurn(model=model, provider="azure", started_at=at, completed_at=at + 0.5)


async def test_rows_turns_topics_and_removal(index: ConversationIndex) -> None:
    await index.add("conv_a", "alice", 100.0)
    await index.add("conv_a", "mallory", 999.0)  # a second add changes nothing
    await index.add("conv_b", "alice", 200.0)
    await index.add("conv_c", "bob", 300.0)
    await index.add_turn("conv_a", _turn("azure/m1", 400.0))
    await index.add_turn("conv_a", _turn("azure/m2", 500.0))
    await index.set_topic("conv_a", "greetings")

    listed = await index.of_owner("alice")
    assert [c.id for c in listed] == ["conv_a", "conv_b"]  # most recently used first
    first = listed[0]
    assert (first.owner, first.created_at, first.message_count) == ("alice", 100.0, 2)
    assert (first.last_used_model, first.last_message_at, first.topic_summary) == (
        "azure/m2",
        500.5,
        "greetings",
    )
    assert [t.model for t in await index.turns("conv_a")] == ["azure/m1", "azure/m2"]
    assert [c.id for c in await index.of_owner("bob")] == ["conv_c"]

    await index.remove("conv_a")
    assert await index.get("conv_a") is None
    assert await index.turns("conv_a") == []
    assert [c.id for c in await index.of_owner("alice")] == ["conv_b"]


async def test_a_conversation_added_with_its_first_turn(index: ConversationIndex) -> None:
    await index.add("conv_t", "alice", 10.0, first_turn=_turn("azure/m", 11.0))
    await index.add("conv_t", "alice", 10.0)  # again, without a turn: nothing changes
    row = await index.get("conv_t")
    assert row is not None and (row.message_count, row.last_used_model) == (1, "azure/m")
    assert [t.started_at for t in await index.turns("conv_t")] == [11.0]


async def test_replicas_share_one_postgres_index_and_never_lose_a_turn(
    postgres: PostgresServer, postgres_db: str
) -> None:
    replicas = [PostgresConversationIndex(_target(postgres, postgres_db)) for _ in range(3)]
    try:
        # Cold start: every replica's first call at once creates the tables exactly once.
        await asyncio.gather(
            *(r.add(f"conv_{i}", "alice", float(i)) for i, r in enumerate(replicas))
        )
        for replica in replicas:
            assert {c.id for c in await replica.of_owner("alice")} == {"conv_0", "conv_1", "conv_2"}
        # Turns of one conversation recorded through every replica at once.
        await asyncio.gather(
            *(replicas[n % 3].add_turn("conv_0", _turn(f"azure/m{n}", float(n))) for n in range(30))
        )
        row = await replicas[1].get("conv_0")
        assert row is not None and row.message_count == 30
        assert sorted(t.model for t in await replicas[2].turns("conv_0")) == sorted(
            f"azure/m{n}" for n in range(30)
        )
    finally:
        for replica in replicas:
            await replica.aclose()


async def test_connections_the_server_closed_are_replaced(
    postgres: PostgresServer, postgres_db: str
) -> None:
    index = PostgresConversationIndex(_target(postgres, postgres_db))
    try:
        await index.add("conv_x", "alice", 1.0)
        with contextlib.closing(postgres.connect()) as admin, admin.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (postgres_db,),
            )
            assert cursor.fetchone()[0] >= 1  # the index's pooled connection is gone
        assert [c.id for c in await index.of_owner("alice")] == ["conv_x"]
    finally:
        await index.aclose()


async def test_an_unreachable_database_is_named_without_its_password_and_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "never-shown-" + "x" * 8
    target = DatabaseTarget("127.0.0.1", free_port(), "convs", "llama", SecretStr(secret))
    index = PostgresConversationIndex(target)
    reported: list[DatabaseUnavailableError] = []
    index.on_unavailable = reported.append
    caplog.set_level(logging.DEBUG)
    try:
        for attempt in (1, 2):  # the pool is tried again on the next call, not cached as failed
            with pytest.raises(DatabaseUnavailableError) as raised:
                await index.of_owner("alice")
            assert len(reported) == attempt and reported[-1] is raised.value  # told every time
            assert raised.value.status == 503
            assert f"PostgreSQL database 'convs' at 127.0.0.1:{target.port}" in str(raised.value)
            assert "refused" in raised.value.cause
            assert secret not in str(raised.value) + repr(raised.value)
    finally:
        await index.aclose()
    assert secret not in caplog.text


async def test_feedback_rows_are_kept_per_owner(index: ConversationIndex) -> None:
    """``POST /v1/feedback`` stores here; each owner's rows are apart from every other's."""
    first = Feedback("f1", "alice", "conv_a", 10.0, -1, "vague", '["incorrect"]', "q", "a")
    second = Feedback("f2", "alice", "conv_a", 20.0, 1, None, None, "q2", "a2")
    other = Feedback("f3", "bob", "conv_b", 15.0, None, "fine", None, "q3", "a3")
    for feedback in (second, other, first):
        await index.add_feedback(feedback)
    assert await index.feedback_of("alice") == [first, second]
    assert await index.feedback_of("bob") == [other]
    assert await index.feedback_of("mallory") == []

"""Unit tests: the conversation index keeps one connection and its schema across calls."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from llama_entra.conversations.index import IndexedTurn, SqliteConversationIndex


def _turn(seconds: float) -> IndexedTurn:
    return IndexedTurn("azure/m", "azure", seconds, seconds + 1)


async def test_index_opens_one_connection_for_many_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    real_connect = sqlite3.connect

    def counting_connect(*args: object, **kwargs: object) -> sqlite3.Connection:
        opened.append(str(args[0]))
        return real_connect(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sqlite3, "connect", counting_connect)
    index = SqliteConversationIndex(tmp_path / "state" / "index.sqlite3")
    await index.add("conv_a", "alice", 1.0)
    await asyncio.gather(*(index.add_turn("conv_a", _turn(n)) for n in range(10)))
    row = await index.get("conv_a")
    assert row is not None and row.message_count == 10
    assert sorted(t.started_at for t in await index.turns("conv_a")) == list(range(10))
    assert len(opened) == 1
    index.close()


async def test_index_survives_close_and_a_new_instance_reads_the_same_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "index.sqlite3"
    first = SqliteConversationIndex(path)
    await first.add("conv_b", "bob", 2.0)
    await first.add_turn("conv_b", _turn(3.0))
    first.close()
    await first.set_topic("conv_b", "reopened after close")  # reconnects on use
    second = SqliteConversationIndex(path)
    listed = await second.of_owner("bob")
    assert [(c.id, c.message_count, c.topic_summary) for c in listed] == [
        ("conv_b", 1, "reopened after close")
    ]
    first.close()
    second.close()

"""``SqliteRunner`` on a real SQLite file: on the loop when free, in its thread when it waits."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import llama_entra.storage.sqlite_runner as sqlite_runner
from llama_entra.storage.sqlite_runner import SqliteRunner, configure


def _opener(path: Path, opened: list[float]) -> SqliteRunner[sqlite3.Connection]:
    def connect(busy_timeout: float) -> sqlite3.Connection:
        connection = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        configure(connection, busy_timeout)
        connection.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER PRIMARY KEY, thread TEXT)")
        opened.append(busy_timeout)
        return connection

    checkpoints: list[str] = []

    def checkpoint(connection: sqlite3.Connection) -> None:
        connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
        checkpoints.append(threading.current_thread().name)

    runner = SqliteRunner(connect, sqlite3.Connection.close, checkpoint, "test-sqlite")
    runner.checkpoints = checkpoints  # type: ignore[attr-defined]
    return runner


def _insert(n: int, attempts: list[str]) -> object:
    def work(db: sqlite3.Connection) -> str:
        attempts.append(threading.current_thread().name)
        with db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO t VALUES (?, ?)", (n, threading.current_thread().name))
        return threading.current_thread().name

    return work


@pytest.fixture
def path(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "runner.sqlite3"


async def test_work_runs_on_the_loop_while_nobody_else_writes(path: Path) -> None:
    opened: list[float] = []
    runner = _opener(path, opened)
    attempts: list[str] = []
    results = [await runner.run(_insert(n, attempts)) for n in range(5)]  # type: ignore[arg-type]
    here = threading.current_thread().name
    assert results == [here] * 5 and attempts == [here] * 5
    assert opened == [0.0]  # one connection, on the loop, that never waits
    await runner.aclose()


async def test_work_that_would_wait_runs_again_in_the_thread(path: Path) -> None:
    opened: list[float] = []
    runner = _opener(path, opened)
    await runner.run(lambda db: db.execute("SELECT 1").fetchone())  # tables exist
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    attempts: list[str] = []
    waiting = asyncio.create_task(runner.run(_insert(1, attempts)))  # type: ignore[arg-type]
    for _ in range(10):
        await asyncio.sleep(0.005)  # the loop is free meanwhile
    assert not waiting.done()
    other.execute("INSERT INTO t VALUES (0, 'other')")
    other.execute("COMMIT")
    assert (await asyncio.wait_for(waiting, 5)).startswith("test-sqlite")
    assert attempts[0] == threading.current_thread().name  # first try on the loop, rolled back
    assert attempts[1].startswith("test-sqlite") and len(attempts) == 2
    assert other.execute("SELECT n FROM t ORDER BY n").fetchall() == [(0,), (1,)]
    assert opened == [0.0, 5.0]
    other.close()
    await runner.aclose()


async def test_other_errors_are_raised_at_once(path: Path) -> None:
    runner = _opener(path, [])
    attempts: list[str] = []
    await runner.run(_insert(1, attempts))  # type: ignore[arg-type]
    with pytest.raises(sqlite3.IntegrityError):
        await runner.run(_insert(1, attempts))  # type: ignore[arg-type]
    assert len(attempts) == 2  # not retried in the thread
    await runner.aclose()


async def test_the_loops_connection_leaves_checkpoints_to_the_thread(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_runner, "CHECKPOINT_EVERY", 3)
    runner = _opener(path, [])
    autocheckpoint = await runner.run(
        lambda db: db.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
    )
    assert autocheckpoint == 0
    for n in range(5):
        await runner.run(_insert(n, []))  # type: ignore[arg-type]
    await runner.aclose()  # waits for the thread's queued work
    checkpoints = runner.checkpoints  # type: ignore[attr-defined]
    assert len(checkpoints) == 2 and all(name.startswith("test-sqlite") for name in checkpoints)


async def test_close_then_use_reopens(path: Path) -> None:
    opened: list[float] = []
    runner = _opener(path, opened)
    await runner.run(_insert(1, []))  # type: ignore[arg-type]
    runner.close()
    await runner.run(_insert(2, []))  # type: ignore[arg-type]
    assert opened == [0.0, 0.0]
    assert await runner.run(lambda db: db.execute("SELECT count(*) FROM t").fetchone()[0]) == 2
    await runner.aclose()

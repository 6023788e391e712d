"""Short SQLite work on the event loop when it need not wait, else in a worker thread.

A query's SQLite work (a turn's insert, an index row, the newest ids of a conversation) takes
0.1-0.5 ms of SQLite. Sent to a worker thread it took 2-3 ms on these loaded 2 cores: the
thread has to be woken and scheduled, twice, and compete for the GIL with the loop (measured in
the service under the query-path benchmark). ``SqliteRunner.run(work)`` therefore runs ``work``
on the event loop, on a connection that never waits: its busy timeout is zero, so where SQLite
would wait for another connection's write lock it fails at once instead, the attempt is rolled
back and ``work`` runs again in the runner's one worker thread, on a connection that does wait
(5 s, as Llama Stack's own). The loop never waits for a lock; the thread does.

- ``work`` may therefore run twice and must only touch the database (its own transaction,
  rolled back on failure), not other state.
- The loop's connection does not checkpoint the WAL (a checkpoint copies pages into the
  database file and syncs it: milliseconds on a loaded disk); every ``CHECKPOINT_EVERY`` calls
  the worker thread runs a passive checkpoint instead (SQLite's own default is after 1000
  pages; a query's write is a few).
- WAL with ``synchronous=NORMAL`` on both connections (the callers' databases use them):
  commits survive a crash of the process, and a power loss once the WAL is checkpointed.

Each connection is opened on first use, in the thread that uses it, by the caller's
``connect(busy_timeout_seconds)``, which gives it these settings with ``configure``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

__all__ = ["CHECKPOINT_EVERY", "SqliteRunner", "configure", "waited"]

CHECKPOINT_EVERY = 200
_BUSY_TIMEOUT = 5.0


def configure(connection: sqlite3.Connection, busy_timeout: float) -> None:
    """WAL, ``synchronous=NORMAL`` and ``busy_timeout``; no automatic checkpoint on the loop's."""
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    if busy_timeout == 0:
        connection.execute("PRAGMA wal_autocheckpoint=0")


def waited(error: BaseException) -> bool:
    """Whether ``error`` is SQLite refusing to wait for a lock (also when SQLAlchemy wraps it)."""
    cause = getattr(error, "orig", None) or error
    if not isinstance(cause, sqlite3.OperationalError):
        return False
    return (getattr(cause, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_BUSY


class SqliteRunner[C]:
    """Runs work on handle ``C`` (a connection or engine), on the loop or else in a thread.

    ``connect(timeout)`` opens a handle whose busy timeout is ``timeout`` seconds; ``close``
    closes one; ``checkpoint`` runs a passive WAL checkpoint on one.
    """

    def __init__(
        self,
        connect: Callable[[float], C],
        close: Callable[[C], None],
        checkpoint: Callable[[C], None],
        thread_name: str,
    ) -> None:
        self._connect = connect
        self._close = close
        self._checkpoint = checkpoint
        self._thread_name = thread_name
        self._on_loop: C | None = None
        self._in_thread: C | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._calls = 0

    async def run[T](self, work: Callable[[C], T]) -> T:
        """``work(handle)``: on the loop if it need not wait, else in the worker thread."""
        try:
            if self._on_loop is None:
                self._on_loop = self._connect(0.0)
            result = work(self._on_loop)
        except Exception as error:  # the driver's, or SQLAlchemy's wrapping it
            if not waited(error):
                raise
        else:
            self._calls += 1
            if self._calls % CHECKPOINT_EVERY == 0:
                self._thread().submit(self._in_thread_run, self._checkpoint)
            return result
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread(), self._in_thread_run, work)

    async def aclose(self) -> None:
        """Close both handles (the thread's in its thread; the next call opens new ones)."""
        executor, self._executor = self._executor, None
        on_loop, self._on_loop = self._on_loop, None
        if on_loop is not None:
            self._close(on_loop)
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(executor, self._close_in_thread)
            executor.shutdown(wait=False)

    def close(self) -> None:
        """``aclose`` for callers without a loop: waits for the thread's running call."""
        executor, self._executor = self._executor, None
        on_loop, self._on_loop = self._on_loop, None
        if on_loop is not None:
            self._close(on_loop)
        if executor is not None:
            executor.submit(self._close_in_thread).result()
            executor.shutdown(wait=True)

    def _thread(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=self._thread_name)
        return self._executor

    def _in_thread_run[T](self, work: Callable[[C], T]) -> T:
        if self._in_thread is None:
            self._in_thread = self._connect(_BUSY_TIMEOUT)
        return work(self._in_thread)

    def _close_in_thread(self) -> None:
        handle, self._in_thread = self._in_thread, None
        if handle is not None:
            self._close(handle)

"""Library mode on SQLite: Llama Stack's chat-completion records written in batches, by one task.

Both backends' inference routers store every chat completion (the question and the assembled
answer) in the inference store, from a task of its own per answer. On PostgreSQL the store
queues those writes for a few writer tasks; on SQLite it writes each one at once, one
transaction through aiosqlite's thread per answer. Under a few hundred concurrent streams
those transactions queue for SQLite's one write lock, and those that wait longer than the
busy timeout fail with "database is locked": the record is lost (logged by the task, seen by
no caller). Profiled, they were also close to half of the service's CPU per streamed answer.

``InferenceWrites`` replaces the store's ``store_chat_completion`` (on the instance): the
record is built and given its access-control columns in the caller's task (its request
context names the owner), then put on a bounded queue (``MAX_QUEUED`` rows; a full queue makes
the caller wait, as the store's own queue does). One writer task takes what is queued, up to
``BATCH_ROWS`` rows, and inserts them in one transaction through a ``StoreLane`` (on the event
loop when SQLite need not wait for the lock, else in the lane's thread, which waits as Llama
Stack's connections do). A row whose id is already stored replaces it, as the store's own
insert-then-update does. ``aclose`` stops taking rows and writes what is queued, within
``DRAIN_SECONDS``, before the stack shuts down.

Durability is the store's own where it is not stated otherwise: a record is committed well
under a second after its answer ends (the time to drain the queue), with the store's WAL and
``synchronous=NORMAL``; records still queued when the process is killed (not stopped) are
lost, as Llama Stack's own queued writes on PostgreSQL are. The service's routes never read
these records; the conversation store (the turns a caller is told about) is not queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy import Connection

from llama_entra.backends.store_lane import StoreLane

__all__ = ["BATCH_ROWS", "DRAIN_SECONDS", "MAX_QUEUED", "InferenceWrites", "queue_inference_writes"]

logger = logging.getLogger(__name__)
BATCH_ROWS = 256
MAX_QUEUED = 10_000
DRAIN_SECONDS = 5.0


class InferenceWrites:
    """The queue and writer task behind one inference store (see the module docstring)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self._table_name: str = store.reference.table_name
        self._lane = StoreLane(store.sql_store)
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(MAX_QUEUED)
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        self.written = 0
        self.failed = 0

    async def store_chat_completion(self, completion: Any, input_messages: list[Any]) -> None:
        """Queue one completion's record (the store's ``store_chat_completion``)."""
        if self._closed:  # shutting down: as the store itself would, at once
            await self._store.__class__.store_chat_completion(
                self._store, completion, input_messages
            )
            return
        data = completion.model_dump()
        record = {
            "id": data["id"],
            "created": data["created"],
            "model": data["model"],
            "choices": data["choices"],
            "input_messages": [message.model_dump() for message in input_messages],
        }
        (prepared,) = await self._lane.prepare(self._table_name, record)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_forever(), name="inference-writes")
        await self._queue.put(prepared)

    async def _write_forever(self) -> None:
        while True:
            rows = [await self._queue.get()]
            while len(rows) < BATCH_ROWS and not self._queue.empty():
                rows.append(self._queue.get_nowait())
            try:
                await self._write(rows)
            except Exception:  # the store's own writer logs and goes on, too
                self.failed += len(rows)
                logger.exception("could not store %d chat completion records", len(rows))
            else:
                self.written += len(rows)
            finally:
                for _ in rows:
                    self._queue.task_done()

    async def _write(self, rows: list[dict[str, Any]]) -> None:
        statement = self._lane.table(self._table_name).insert().prefix_with("OR REPLACE")

        def work(connection: Connection) -> None:
            connection.execute(statement, rows)

        await self._lane.run(work)

    async def aclose(self, drain_seconds: float = DRAIN_SECONDS) -> None:
        """Write what is queued (within ``drain_seconds``), stop the writer, close the lane."""
        self._closed = True
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                await asyncio.wait_for(self._queue.join(), drain_seconds)
            except TimeoutError:
                logger.error(
                    "%d chat completion records not stored at shutdown", self._queue.qsize()
                )
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        await self._lane.aclose()


def queue_inference_writes(router: object) -> InferenceWrites | None:
    """Queue the writes of ``router``'s inference store if it is on SQLite (else None)."""
    store = getattr(router, "store", None)
    if store is None or getattr(store, "enable_write_queue", True):
        return None  # no store, or one that queues its writes itself (PostgreSQL)
    writes = InferenceWrites(store)
    store.store_chat_completion = writes.store_chat_completion
    return writes

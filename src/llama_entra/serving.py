"""Run uvicorn so that SIGTERM and Ctrl-C stop it promptly, cleanly and with exit code 0.

``GracefulServer`` is a ``uvicorn.Server`` that every command (``serve``, ``proxy``,
``emulator``) runs. It departs from uvicorn in two places, both found by holding an idle
keep-alive connection open while the process is told to stop:

- **Idle TLS connections are dropped at once.** uvicorn closes an idle connection with
  ``transport.close()``; over TLS the event loop (uvloop or asyncio) then sends
  ``close_notify`` and waits for the peer's (up to its SSL shutdown timeout, 30 s) before the
  connection counts as gone, and uvicorn waits for every connection. An idle client never
  answers, so the process hung for 30 s. Here a connection still closing
  ``CLOSE_GRACE_SECONDS`` after it was asked to close is aborted.
- **A requested stop is a clean exit.** uvicorn re-raises the caught signal after shutting
  down, so the process died of SIGTERM (status -15/143) or raised ``KeyboardInterrupt`` in the
  middle of closing resources (130, with a traceback). Here the stop is simply complete.

In-flight requests and streams may finish for up to ``timeout_graceful_shutdown`` seconds (the
configured drain limit); then uvicorn cancels them. A second Ctrl-C forces the exit at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
from collections.abc import Callable, Generator
from typing import Any

import uvicorn

__all__ = ["CLOSE_GRACE_SECONDS", "GracefulServer"]

CLOSE_GRACE_SECONDS = 0.5
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class GracefulServer(uvicorn.Server):
    """A uvicorn server with a bounded, clean stop; ``on_ready(port)`` runs once it listens."""

    def __init__(
        self,
        config: uvicorn.Config,
        *,
        on_ready: Callable[[int], None] | None = None,
        on_tick: Callable[[], object] | None = None,
    ) -> None:
        super().__init__(config)
        self._on_ready = on_ready
        self._on_tick = on_tick

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        port: int = self.servers[0].sockets[0].getsockname()[1]
        return port

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start listening, then report the port."""
        await super().startup(sockets)
        if self.started and self._on_ready is not None:
            self._on_ready(self.port)

    async def on_tick(self, counter: int) -> bool:
        """uvicorn's 0.1 s tick; once a second also run the ``on_tick`` hook (TLS reload)."""
        if self._on_tick is not None and counter % 10 == 0:
            self._on_tick()
        return await super().on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's shutdown, with connections stuck in closing aborted after a short grace."""
        reaper = asyncio.create_task(self._abort_lingering_closes())
        try:
            await super().shutdown(sockets)
        finally:
            reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reaper

    async def _abort_lingering_closes(self) -> None:
        loop = asyncio.get_running_loop()
        closing_since: dict[int, float] = {}
        while True:
            now = loop.time()
            for connection in list(self.server_state.connections):
                # uvloop's transports are not asyncio.Transport subclasses: duck typing.
                transport: Any = getattr(connection, "transport", None)
                if transport is None or not transport.is_closing():
                    continue
                since = closing_since.setdefault(id(connection), now)
                if now - since >= CLOSE_GRACE_SECONDS:
                    transport.abort()
            await asyncio.sleep(0.1)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Stop on SIGINT/SIGTERM; unlike uvicorn, do not re-raise the signal afterwards."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in _SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

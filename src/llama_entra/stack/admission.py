"""New Azure calls wait their turn while a worker's event loop is overloaded.

A worker relays every open stream on one event loop. Past what its core can carry, every
callback waits in one queue: chunks arrive late for all streams at once, and the first steps of
a new call (the TLS handshake to Azure, sending the request) wait so long that the OpenAI SDK's
five-second connect timeout, or the server's wait for the request, runs out. Calls then fail
that a moment's wait would have served: measured with 1,000 streams opened at once on one
worker, tens to hundreds failed so.

``Admission`` measures the loop's lag: how late a timer set for ``TICK_SECONDS`` fires. While
the lag is under ``max_lag`` a tick lets up to ``BATCH`` new calls start (the first of a burst
go at once); beyond that, or while the loop lags, calls queue in arrival order and start as
later ticks allow. So an overloaded worker starts new calls at the pace it finishes them, and
the streams it carries keep their pace. A call that waited ``max_wait`` seconds gets
``ServiceOverloadedError`` (503 with ``Retry-After``) instead of waiting on.

The measuring task starts with the first call and ends with ``aclose``. Calls retried within
one request (Azure's 401, 429) were admitted once and are not queued again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math

from llama_entra.errors import ServiceOverloadedError

__all__ = ["BATCH", "TICK_SECONDS", "Admission"]

TICK_SECONDS = 0.05
BATCH = 32  # calls started per tick: 640 a second, far above what one core serves


class Admission:
    """Starts new Azure calls at the pace the event loop keeps up with (see module docs)."""

    def __init__(self, max_lag: float, max_wait: float) -> None:
        self.max_lag = max_lag
        self.max_wait = max_wait
        self.lag = 0.0  # seconds the last tick fired late
        self.waited = 0  # calls that had to queue
        self.refused = 0  # calls that waited max_wait and were refused
        self._allowance = BATCH
        self._queue: collections.deque[asyncio.Future[None]] = collections.deque()
        self._ticker: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        """Calls queued now."""
        return sum(1 for waiter in self._queue if not waiter.done())

    async def admit(self) -> None:
        """Return when a new call may start; ``ServiceOverloadedError`` after ``max_wait``."""
        if self._ticker is None:
            self._ticker = asyncio.get_running_loop().create_task(self._tick())
        if self._allowance > 0 and not self._queue:
            self._allowance -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._queue.append(waiter)
        self.waited += 1
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.max_wait)
        except TimeoutError:
            waiter.cancel()
            self.refused += 1
            raise ServiceOverloadedError(max(1, math.ceil(self.lag))) from None
        except asyncio.CancelledError:
            waiter.cancel()  # the caller left: its turn passes to the next one
            raise

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(TICK_SECONDS)
            self.lag = max(0.0, loop.time() - started - TICK_SECONDS)
            self._allowance = BATCH if self.lag < self.max_lag else 0
            while self._allowance > 0 and self._queue:
                waiter = self._queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    self._allowance -= 1

    async def aclose(self) -> None:
        """Stop measuring; calls still queued are let through."""
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        while self._queue:
            waiter = self._queue.popleft()
            if not waiter.done():
                waiter.set_result(None)

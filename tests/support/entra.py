"""Fakes for unit tests of code that uses the token manager: a clock, a sleep, an Entra.

``FakeEntra.factory`` is a ``credential_factory`` for ``TokenManager``: each credential it
builds answers ``get_token_info`` with ``token-N`` (N = request number), valid for ``lifetime``
seconds of the fake clock, or raises the next queued failure. ``gate`` holds requests until set.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from azure.core.credentials import AccessTokenInfo, TokenRequestOptions

from llama_entra.config import AzureEntraIdConfig
from llama_entra.entra import TokenManager

__all__ = ["FakeClock", "FakeCredential", "FakeEntra", "FakeSleep", "fake_manager", "settle"]

START = 1_700_000_000.0


class FakeClock:
    """``time.time`` stand-in that only moves when told to."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeSleep:
    """An injected ``sleep`` the test drives: each call waits until the test wakes it."""

    def __init__(self) -> None:
        self._calls: asyncio.Queue[tuple[float, asyncio.Future[None]]] = asyncio.Queue()

    async def __call__(self, delay: float) -> None:
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._calls.put((delay, wake))
        await wake

    async def next_call(self) -> tuple[float, asyncio.Future[None]]:
        """The next sleep still waiting: ``(delay, wake)``; ``wake.set_result(None)`` ends it."""
        async with asyncio.timeout(2):
            while True:
                delay, wake = await self._calls.get()
                if not wake.done():
                    return delay, wake


@dataclass
class FakeEntra:
    """Counts credentials built, token requests and closes; issues numbered tokens."""

    clock: FakeClock
    lifetime: float = 3600.0
    refresh_in: float | None = None
    failures: list[BaseException] = field(default_factory=list)
    gate: asyncio.Event | None = None
    built: int = 0
    requests: int = 0
    closed: int = 0
    scopes: list[tuple[str, ...]] = field(default_factory=list)

    async def factory(self) -> FakeCredential:
        self.built += 1
        return FakeCredential(self)


class FakeCredential:
    """One credential instance built by ``FakeEntra``."""

    def __init__(self, entra: FakeEntra) -> None:
        self.entra = entra

    async def get_token_info(
        self, *scopes: str, options: TokenRequestOptions | None = None
    ) -> AccessTokenInfo:
        entra = self.entra
        entra.requests += 1
        number = entra.requests
        entra.scopes.append(scopes)
        if entra.gate is not None:
            await entra.gate.wait()
        if entra.failures:
            raise entra.failures.pop(0)
        now = entra.clock()
        refresh_on = int(now + entra.refresh_in) if entra.refresh_in is not None else None
        return AccessTokenInfo(f"token-{number}", int(now + entra.lifetime), refresh_on=refresh_on)

    async def close(self) -> None:
        self.entra.closed += 1


def fake_manager(
    entra: FakeEntra,
    *,
    margin: int = 300,
    timeout: float = 10.0,
    sleep: FakeSleep | None = None,
) -> TokenManager:
    """A manager for a client-secret identity whose credentials come from ``entra``."""
    config = AzureEntraIdConfig(
        tenant_id="tenant-1",
        client_id="client-1",
        client_secret="s3cr3t-fake",
        refresh_margin_seconds=margin,
        timeout_seconds=timeout,
    )
    return TokenManager(
        config,
        credential_factory=entra.factory,
        clock=entra.clock,
        sleep=sleep or FakeSleep(),
        rand=lambda: 0.0,
    )


async def settle(rounds: int = 20) -> None:
    """Let ready tasks run (fakes never wait on real time)."""
    for _ in range(rounds):
        await asyncio.sleep(0)

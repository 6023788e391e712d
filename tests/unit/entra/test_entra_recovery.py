"""Unit tests: recovery after a long Entra outage, with no valid token held (fake clock)."""

from __future__ import annotations

import asyncio

import pytest
from azure.core.exceptions import ServiceRequestError

from llama_entra.entra import Backoff
from llama_entra.errors import TokenUnavailableError
from support.entra import FakeClock, FakeEntra, fake_manager, settle


@pytest.fixture
def entra() -> FakeEntra:
    return FakeEntra(FakeClock())


def test_backoff_without_a_token_never_waits_more_than_a_second() -> None:
    backoff = Backoff()
    assert [backoff.delay(n, 0.999, token_held=False) for n in (1, 2, 5, 50)] == [1, 1, 1, 1]
    assert backoff.delay(5, 0.0, token_held=True) == 16


async def test_token_manager_long_outage_asks_once_a_second_and_recovers_at_once(
    entra: FakeEntra,
) -> None:
    entra.failures = [ServiceRequestError("Connection refused")] * 10_000
    manager = fake_manager(entra)
    # 120 s of outage, 50 concurrent callers every 100 ms: each gets an error, none waits long.
    for _ in range(1200):
        results = await asyncio.gather(
            *(manager.token() for _ in range(50)), return_exceptions=True
        )
        assert all(isinstance(result, TokenUnavailableError) for result in results)
        entra.clock.advance(0.1)
    assert 110 <= entra.requests <= 121  # about one per second, never a herd
    entra.failures.clear()  # Entra is back
    healed_at = entra.clock()
    while True:
        try:
            token = await manager.token()
            break
        except TokenUnavailableError:
            entra.clock.advance(0.1)
            await settle()
    assert token.get_secret_value().startswith("token-")
    assert entra.clock() - healed_at <= 1.0


async def test_token_manager_expiry_during_long_refresh_backoff_switches_to_short_steps(
    entra: FakeEntra,
) -> None:
    manager = fake_manager(entra, margin=300)
    await manager.token()
    entra.failures = [ServiceRequestError("down")] * 100
    entra.clock.advance(3300)  # due: background refreshes fail and back off up to 30 s
    for _ in range(60):
        assert (await manager.token()).get_secret_value() == "token-1"
        await settle()
        entra.clock.advance(5)
    assert entra.requests < 20  # 300 s of refresh failures in steps growing to 30 s
    entra.clock.advance(1)  # expired now
    with pytest.raises(TokenUnavailableError):
        await manager.token()
    asked = entra.requests
    entra.clock.advance(1.0)
    with pytest.raises(TokenUnavailableError):
        await manager.token()
    assert entra.requests == asked + 1  # no valid token: the next step is one second
    await manager.aclose()

"""End-to-end: a long Entra outage with many callers and no valid token, then recovery.

Real azure-identity credentials ask the emulator over HTTPS; the emulator's token endpoint
answers 503 for the whole outage (fault injection) and its counters show what Entra saw.
The manager uses its default backoff, as the service does.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from llama_entra.config import AzureEntraIdConfig
from llama_entra.entra import TokenManager
from llama_entra.errors import TokenUnavailableError
from support.service import entra_section

pytestmark = pytest.mark.slow

OUTAGE_SECONDS = 20.0
CALLERS = 50


async def _requests(emulator: Any) -> int:
    counters = await asyncio.to_thread(emulator.counters)
    return int(counters["token_requests"])


async def test_token_manager_long_outage_no_herd_and_first_caller_after_heal_succeeds(
    fresh_emulator: Any,
) -> None:
    config = AzureEntraIdConfig.model_validate(entra_section(fresh_emulator))
    await asyncio.to_thread(fresh_emulator.fail_next_token_requests, 1_000_000, 503)
    manager = TokenManager(config)
    await manager.start()
    errors = 0
    stop = asyncio.Event()

    async def caller() -> None:
        nonlocal errors
        while not stop.is_set():
            try:
                await manager.token()
            except TokenUnavailableError:
                errors += 1
            await asyncio.sleep(0.05)  # a steady stream of requests, not a wait on a condition

    callers = [asyncio.create_task(caller()) for _ in range(CALLERS)]
    started = time.monotonic()
    try:
        await asyncio.sleep(OUTAGE_SECONDS)  # the outage lasts this long, whatever happens
        outage = time.monotonic() - started
        asked = await _requests(fresh_emulator)
        assert errors > 10 * asked  # callers kept failing fast, mostly without a request
        # About one token request per second, however many callers: no herd.
        assert asked <= outage * 1.0 + 2, f"{asked} token requests in {outage:.1f} s"
        assert asked >= outage / 3, f"only {asked} token requests in {outage:.1f} s"
    finally:
        stop.set()
        await asyncio.gather(*callers)

    await asyncio.to_thread(fresh_emulator.fail_next_token_requests, 0)
    healed = time.monotonic()
    while True:  # the first caller after the heal, polling with a deadline
        try:
            token = await manager.token()
            break
        except TokenUnavailableError:
            assert time.monotonic() - healed < 2.0, "no token within 2 s of Entra recovering"
            await asyncio.sleep(0.05)
    assert time.monotonic() - healed < 2.0
    assert token.get_secret_value()
    assert manager.status().has_token
    await manager.aclose()

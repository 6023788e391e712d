"""Unit tests of TokenManager with a fake credential, a fake clock and a driven sleep."""

from __future__ import annotations

import asyncio
import logging

import pytest
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError
from pydantic import SecretStr

from llama_entra.entra import Backoff
from llama_entra.errors import TokenRejectedError, TokenUnavailableError
from support.entra import START, FakeClock, FakeEntra, FakeSleep, fake_manager, settle

SCOPE = "https://cognitiveservices.azure.com/.default"
BAD_SECRET = ClientAuthenticationError(
    message="Microsoft Entra ID error '(invalid_client) AADSTS7000215: Invalid client secret "
    "provided. Ensure the secret being sent in the request is the client secret value.\r\n"
    "Trace ID: 1'"
)


@pytest.fixture
def entra() -> FakeEntra:
    return FakeEntra(FakeClock())


async def test_token_manager_fresh_token_is_fetched_once(entra: FakeEntra) -> None:
    manager = fake_manager(entra)
    first = await manager.token()
    entra.clock.advance(3000)
    second = await manager.token()
    assert first.get_secret_value() == second.get_secret_value() == "token-1"
    assert isinstance(first, SecretStr)
    assert (entra.requests, entra.built, entra.closed) == (1, 1, 1)
    assert entra.scopes == [(SCOPE,)]
    await manager.aclose()


async def test_token_manager_cold_concurrent_callers_share_one_fetch(entra: FakeEntra) -> None:
    entra.gate = asyncio.Event()
    manager = fake_manager(entra)
    callers = [asyncio.create_task(manager.token()) for _ in range(100)]
    await settle()
    entra.gate.set()
    tokens = await asyncio.gather(*callers)
    assert {token.get_secret_value() for token in tokens} == {"token-1"}
    assert entra.requests == 1
    assert manager.status().token_requests == 1
    await manager.aclose()


async def test_token_manager_cancelled_caller_does_not_cancel_shared_fetch(
    entra: FakeEntra,
) -> None:
    entra.gate = asyncio.Event()
    manager = fake_manager(entra)
    first = asyncio.create_task(manager.token())
    second = asyncio.create_task(manager.token())
    await settle()
    first.cancel()
    await settle()
    entra.gate.set()
    assert (await second).get_secret_value() == "token-1"
    assert first.cancelled()
    assert entra.requests == 1
    await manager.aclose()


async def test_token_manager_due_at_margin_serves_current_token_and_refreshes_behind(
    entra: FakeEntra,
) -> None:
    manager = fake_manager(entra, margin=300)
    await manager.token()
    entra.clock.advance(3299)
    assert (await manager.token()).get_secret_value() == "token-1"
    assert entra.requests == 1  # 301 s left: not yet due
    entra.clock.advance(2)
    entra.gate = asyncio.Event()  # the refresh hangs: the caller must not wait for it
    assert (await manager.token()).get_secret_value() == "token-1"
    await settle()
    assert entra.requests == 2
    entra.gate.set()
    await settle()
    assert (await manager.token()).get_secret_value() == "token-2"
    assert entra.requests == 2
    await manager.aclose()


async def test_token_manager_refresh_on_passed_triggers_refresh_before_margin(
    entra: FakeEntra,
) -> None:
    entra.refresh_in = 1800
    manager = fake_manager(entra, margin=300)
    await manager.token()
    entra.clock.advance(1799)
    await manager.token()
    await settle()
    assert entra.requests == 1
    entra.clock.advance(1)
    await manager.token()
    await settle()
    assert entra.requests == 2
    assert (await manager.token()).get_secret_value() == "token-2"
    await manager.aclose()


async def test_token_manager_margin_above_half_lifetime_refreshes_at_half_life(
    entra: FakeEntra,
) -> None:
    entra.lifetime = 100
    manager = fake_manager(entra, margin=300)
    await manager.token()
    entra.clock.advance(49)
    await manager.token()
    await settle()
    assert entra.requests == 1
    entra.clock.advance(1)
    await manager.token()
    await settle()
    assert entra.requests == 2
    await manager.aclose()


async def test_token_manager_failed_refresh_keeps_valid_token_and_backs_off(
    entra: FakeEntra,
) -> None:
    manager = fake_manager(entra, margin=300)
    await manager.token()
    entra.clock.advance(3400)  # due, 200 s left
    entra.failures = [ServiceRequestError("Cannot connect to host")] * 2
    assert (await manager.token()).get_secret_value() == "token-1"
    await settle()
    assert entra.requests == 2
    status = manager.status()
    assert status.has_token
    assert status.last_error == "Entra ID authority unreachable: Cannot connect to host"
    # Within the backoff (1 s) no new request, the valid token keeps being served.
    for _ in range(10):
        assert (await manager.token()).get_secret_value() == "token-1"
    await settle()
    assert entra.requests == 2
    entra.clock.advance(1)
    await manager.token()
    await settle()
    assert entra.requests == 3  # second failure: backoff now 2 s
    entra.clock.advance(1.5)
    await manager.token()
    await settle()
    assert entra.requests == 3
    entra.clock.advance(0.5)
    await manager.token()
    await settle()
    assert entra.requests == 4
    assert (await manager.token()).get_secret_value() == "token-4"
    assert manager.status().last_error is None
    await manager.aclose()


async def test_token_manager_no_valid_token_raises_rejected_error_with_aadsts_cause(
    entra: FakeEntra,
) -> None:
    entra.failures = [BAD_SECRET]
    manager = fake_manager(entra)
    with pytest.raises(TokenRejectedError) as caught:
        await manager.token()
    assert caught.value.cause == "AADSTS7000215: Invalid client secret provided."
    status = manager.status()
    assert not status.has_token
    assert status.expires_in_seconds is None
    assert status.last_error == "AADSTS7000215: Invalid client secret provided."
    await manager.aclose()


async def test_token_manager_expired_token_without_refresh_raises_unavailable(
    entra: FakeEntra,
) -> None:
    manager = fake_manager(entra)
    await manager.token()
    entra.clock.advance(3600)
    entra.failures = [ServiceRequestError("Connection refused")]
    with pytest.raises(TokenUnavailableError, match="authority unreachable: Connection refused"):
        await manager.token()
    await manager.aclose()


async def test_token_manager_failing_entra_is_asked_once_per_backoff_step(
    entra: FakeEntra,
) -> None:
    entra.gate = asyncio.Event()
    entra.failures = [BAD_SECRET] * 3
    manager = fake_manager(entra)
    callers = [asyncio.create_task(manager.token()) for _ in range(50)]
    await settle()
    entra.gate.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(result, TokenRejectedError) for result in results)
    assert entra.requests == 1
    # Right after the failure every call gets the same error at once, without a request.
    for _ in range(20):
        with pytest.raises(TokenRejectedError, match="AADSTS7000215"):
            await manager.token()
    assert entra.requests == 1
    entra.clock.advance(1)
    with pytest.raises(TokenRejectedError):
        await manager.token()
    assert entra.requests == 2
    await manager.aclose()


async def test_token_manager_retry_is_never_later_than_expiry(entra: FakeEntra) -> None:
    manager = fake_manager(entra, margin=300)
    await manager.token()
    entra.clock.advance(3599.5)  # half a second left, backoff would say 1 s
    entra.failures = [ServiceRequestError("down")] * 2
    assert (await manager.token()).get_secret_value() == "token-1"
    await settle()
    assert entra.requests == 2
    entra.clock.advance(0.5)  # expired: the retry is due now, not half a second later
    with pytest.raises(TokenUnavailableError):
        await manager.token()
    assert entra.requests == 3
    await manager.aclose()


def test_backoff_doubles_from_one_second_with_jitter_and_caps_at_thirty() -> None:
    backoff = Backoff()
    assert [backoff.delay(n, 0.0) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.delay(1, 0.999) == pytest.approx(1.25, abs=0.01)
    assert backoff.delay(50, 0.999) == 30


async def test_token_manager_slow_authority_times_out_with_unavailable(entra: FakeEntra) -> None:
    entra.gate = asyncio.Event()  # never set
    manager = fake_manager(entra, timeout=0.05)
    with pytest.raises(TokenUnavailableError) as caught:
        await manager.token()
    assert caught.value.cause == "Entra ID token request timed out after 0.05 s"
    assert entra.closed == 1  # the credential is closed even when abandoned
    await manager.aclose()


async def test_token_manager_invalidate_forces_new_fetch_with_new_credential(
    entra: FakeEntra,
) -> None:
    manager = fake_manager(entra)
    first = await manager.token()
    manager.invalidate(first)
    assert not manager.status().has_token
    second = await manager.token()
    assert second.get_secret_value() == "token-2"
    assert (entra.requests, entra.built) == (2, 2)
    await manager.aclose()


async def test_token_manager_invalidate_ignores_stale_rejected_token(entra: FakeEntra) -> None:
    manager = fake_manager(entra)
    stale = await manager.token()
    manager.invalidate()
    current = await manager.token()
    manager.invalidate(stale)  # another request already replaced it
    assert (await manager.token()).get_secret_value() == current.get_secret_value() == "token-2"
    assert entra.requests == 2
    await manager.aclose()


async def test_token_manager_start_makes_no_token_request(entra: FakeEntra) -> None:
    sleep = FakeSleep()
    manager = fake_manager(entra, sleep=sleep)
    await manager.start()
    await settle()
    assert entra.requests == 0
    assert manager.status().token_requests == 0
    await manager.aclose()


async def test_token_manager_background_task_refreshes_before_expiry(entra: FakeEntra) -> None:
    sleep = FakeSleep()
    manager = fake_manager(entra, margin=300, sleep=sleep)
    await manager.start()
    await manager.token()
    delay, wake = await sleep.next_call()
    assert delay == pytest.approx(3300)
    entra.clock.advance(delay)
    wake.set_result(None)
    delay, wake = await sleep.next_call()  # the loop refreshed and sleeps again
    assert entra.requests == 2
    assert delay == pytest.approx(3300)
    assert (await manager.token()).get_secret_value() == "token-2"
    assert entra.requests == 2  # the caller did not fetch
    await manager.aclose()
    assert wake.cancelled()
    assert manager._refresh_task is None


async def test_token_manager_background_task_retries_failed_refresh_with_backoff(
    entra: FakeEntra,
) -> None:
    sleep = FakeSleep()
    manager = fake_manager(entra, margin=300, sleep=sleep)
    await manager.start()
    await manager.token()
    delay, wake = await sleep.next_call()
    entra.failures = [ServiceRequestError("down")]
    entra.clock.advance(delay)
    wake.set_result(None)
    delay, wake = await sleep.next_call()
    assert entra.requests == 2
    assert delay == pytest.approx(1.0)  # first backoff step
    entra.clock.advance(delay)
    wake.set_result(None)
    delay, _ = await sleep.next_call()
    assert entra.requests == 3
    assert (await manager.token()).get_secret_value() == "token-3"
    assert delay == pytest.approx(3300)
    await manager.aclose()


async def test_token_manager_aclose_cancels_fetch_in_flight_and_refuses_later_calls(
    entra: FakeEntra,
) -> None:
    entra.gate = asyncio.Event()
    manager = fake_manager(entra)
    await manager.start()
    caller = asyncio.create_task(manager.token())
    await settle()
    await manager.aclose()
    assert entra.closed == 1
    with pytest.raises(asyncio.CancelledError):
        await caller
    with pytest.raises(TokenUnavailableError, match="closed"):
        await manager.token()


async def test_token_manager_token_from_the_past_is_a_failure(entra: FakeEntra) -> None:
    entra.lifetime = -5
    manager = fake_manager(entra)
    with pytest.raises(TokenUnavailableError, match="expired token"):
        await manager.token()
    await manager.aclose()


async def test_token_manager_status_reports_expiry_refresh_and_count(entra: FakeEntra) -> None:
    manager = fake_manager(entra)
    assert manager.status().model_dump() == {
        "has_token": False,
        "expires_in_seconds": None,
        "last_refresh": None,
        "last_error": None,
        "token_requests": 0,
    }
    await manager.token()
    entra.clock.advance(600)
    status = manager.status()
    assert status.has_token
    assert status.expires_in_seconds == 3000
    assert status.last_refresh is not None
    assert status.last_refresh.timestamp() == START
    assert status.token_requests == 1
    assert manager.identity == "client_secret tenant=tenant-1 client=client-1"
    await manager.aclose()


async def test_token_manager_logs_outcomes_without_token_or_secret(
    entra: FakeEntra, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    entra.failures = [BAD_SECRET]
    manager = fake_manager(entra)
    with pytest.raises(TokenRejectedError):
        await manager.token()
    entra.clock.advance(5)
    token = await manager.token()
    manager.invalidate(token)
    await manager.aclose()
    text = caplog.text
    assert "AADSTS7000215" in text
    assert "fetched: expires in 3600 s" in text
    assert token.get_secret_value() not in text
    assert "s3cr3t-fake" not in text


async def test_token_manager_reports_every_fetch_outcome_to_observers(entra: FakeEntra) -> None:
    seen: list[tuple[str, float]] = []
    manager = fake_manager(entra)
    manager.observe_fetches(lambda outcome, seconds: seen.append((outcome, seconds)))
    entra.failures = [BAD_SECRET]
    with pytest.raises(TokenRejectedError):
        await manager.token()
    entra.clock.advance(60)  # past the backoff
    entra.failures = [ServiceRequestError("Connection refused")]
    with pytest.raises(TokenUnavailableError):
        await manager.token()
    entra.clock.advance(60)
    await manager.token()
    assert [outcome for outcome, _ in seen] == ["rejected", "unavailable", "success"]
    assert all(seconds >= 0 for _, seconds in seen)
    await manager.aclose()

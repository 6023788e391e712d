"""End-to-end: the token manager with real azure-identity credentials over HTTPS to the emulator.

Each test builds its own manager against the shared emulator (``fresh_emulator``: counters,
faults and token lifetime reset) and proves what reached the emulator through its counters,
and that the token works on its Azure OpenAI API.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import jwt
import pytest
from pydantic import SecretStr

from llama_entra.config import AzureEntraIdConfig
from llama_entra.entra import Backoff, TokenManager, create_token_manager
from llama_entra.errors import TokenRejectedError, TokenUnavailableError

FAST_BACKOFF = Backoff(initial=0.2, maximum=1.0)

ManagerFactory = Callable[..., Awaitable[TokenManager]]


def _requests(emulator: Any) -> int:
    return int(emulator.counters()["token_requests"])


def _secret_config(emulator: Any, **changes: Any) -> AzureEntraIdConfig:
    raw = {
        "tenant_id": emulator.tenant_id,
        "client_id": emulator.client_id,
        "client_secret": emulator.client_secret,
        "authority_host": emulator.url,
        "ca_bundle": str(emulator.ca_path),
        "timeout_seconds": 5,
        **changes,
    }
    return AzureEntraIdConfig.model_validate(raw)


def _certificate_config(emulator: Any, **changes: Any) -> AzureEntraIdConfig:
    return _secret_config(
        emulator,
        credential="certificate",
        client_id=emulator.cert_client_id,
        client_secret=None,
        certificate_path=str(emulator.cert_path),
        **changes,
    )


@pytest.fixture
async def make_manager() -> AsyncIterator[ManagerFactory]:
    """Builds managers (real credentials, fast backoff) and closes them after the test."""
    managers: list[TokenManager] = []

    async def make(config: AzureEntraIdConfig, *, start: bool = False) -> TokenManager:
        manager = TokenManager(config, backoff=FAST_BACKOFF)
        managers.append(manager)
        if start:
            await manager.start()
        return manager

    yield make
    await asyncio.gather(*(manager.aclose() for manager in managers))


async def _accepted_by_azure(emulator: Any, token: SecretStr) -> int:
    async with httpx.AsyncClient(verify=str(emulator.ca_path), timeout=10) as client:
        response = await client.get(
            f"{emulator.azure_base_url}/models",
            headers={"Authorization": f"Bearer {token.get_secret_value()}"},
        )
    return response.status_code


async def _wait_for(condition: Callable[[], bool], within: float, what: str) -> None:
    """Poll ``condition`` (cheap, in-process) until true; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {within} s")
        await asyncio.sleep(0.02)


async def test_token_manager_client_secret_gets_token_azure_accepts(
    fresh_emulator: Any, make_manager: ManagerFactory
) -> None:
    manager = await make_manager(_secret_config(fresh_emulator))
    token = await manager.token()
    assert token.get_secret_value()
    assert await _accepted_by_azure(fresh_emulator, token) == 200
    assert _requests(fresh_emulator) == 1
    status = manager.status()
    assert status.has_token
    assert status.token_requests == 1
    assert status.expires_in_seconds is not None and status.expires_in_seconds > 60


@pytest.mark.parametrize("send_chain", [False, True], ids=["aio", "sync-with-x5c"])
async def test_token_manager_certificate_gets_token_azure_accepts(
    fresh_emulator: Any, make_manager: ManagerFactory, send_chain: bool
) -> None:
    config = _certificate_config(fresh_emulator, send_certificate_chain=send_chain)
    manager = await make_manager(config)
    token = await manager.token()
    assert await _accepted_by_azure(fresh_emulator, token) == 200
    by_client = fresh_emulator.counters()["token_requests_by_client"]
    assert by_client.get(fresh_emulator.cert_client_id) == 1


async def test_token_manager_wrong_secret_raises_rejected_with_aadsts_cause(
    fresh_emulator: Any, make_manager: ManagerFactory
) -> None:
    manager = await make_manager(_secret_config(fresh_emulator, client_secret="wrong-s3cr3t"))
    with pytest.raises(TokenRejectedError) as caught:
        await manager.token()
    cause = caught.value.cause
    assert cause.startswith("AADSTS")
    assert "wrong-s3cr3t" not in cause
    assert manager.status().last_error == cause
    assert not manager.status().has_token


async def test_token_manager_untrusted_authority_certificate_is_unavailable(
    fresh_emulator: Any, make_manager: ManagerFactory
) -> None:
    manager = await make_manager(_secret_config(fresh_emulator, ca_bundle=None))
    with pytest.raises(TokenUnavailableError, match=r"authority unreachable.*CERTIFICATE_VERIFY"):
        await manager.token()


async def test_token_manager_100_concurrent_cold_calls_make_one_token_request(
    fresh_emulator: Any, make_manager: ManagerFactory
) -> None:
    fresh_emulator.delay_next_token_requests(1, 0.3)  # all 100 arrive while it is in flight
    manager = await make_manager(_secret_config(fresh_emulator))
    tokens = await asyncio.gather(*(manager.token() for _ in range(100)))
    assert len({token.get_secret_value() for token in tokens}) == 1
    assert _requests(fresh_emulator) == 1


async def test_token_manager_short_lifetime_is_refreshed_in_background_without_waiting(
    fresh_emulator: Any, make_manager: ManagerFactory
) -> None:
    fresh_emulator.set_token_lifetime(6)
    manager = await make_manager(_secret_config(fresh_emulator, refresh_margin_seconds=3))
    await manager.start()
    first = await manager.token()
    first_expiry = time.time() + (manager.status().expires_in_seconds or 0)
    fresh_emulator.delay_next_token_requests(1, 1.0)  # the refresh takes a second
    slowest = 0.0
    first_refresh = manager.status().last_refresh
    deadline = time.monotonic() + 10
    # token_requests counts fetches started; last_refresh changes only once one has finished
    while manager.status().last_refresh == first_refresh and time.monotonic() < deadline:
        started = time.perf_counter()
        await manager.token()
        slowest = max(slowest, time.perf_counter() - started)
        await asyncio.sleep(0.05)
    status = manager.status()
    assert status.token_requests == 2
    assert status.last_refresh is not None and status.last_refresh != first_refresh
    assert status.last_refresh.timestamp() < first_expiry  # refreshed before the old one expired
    second = await manager.token()
    assert second.get_secret_value() != first.get_secret_value()
    assert slowest < 0.5  # callers during the one-second refresh were served the old token
    assert _requests(fresh_emulator) == 2
    assert await _accepted_by_azure(fresh_emulator, second) == 200


async def test_token_manager_entra_down_during_refresh_keeps_old_token_and_recovers(
    fresh_emulator: Any, make_manager: ManagerFactory
) -> None:
    fresh_emulator.set_token_lifetime(6)
    manager = await make_manager(_secret_config(fresh_emulator, refresh_margin_seconds=3))
    await manager.start()
    first = await manager.token()
    fresh_emulator.set_entra_down(True)
    await _wait_for(lambda: manager.status().last_error is not None, 5, "a failed refresh")
    assert (await manager.token()).get_secret_value() == first.get_secret_value()
    assert manager.status().has_token
    fresh_emulator.set_entra_down(False)
    await _wait_for(lambda: manager.status().last_error is None, 3, "the refresh to recover")
    second = await manager.token()
    assert second.get_secret_value() != first.get_secret_value()
    assert await _accepted_by_azure(fresh_emulator, second) == 200


async def test_token_manager_failing_entra_gets_one_request_per_backoff_step(
    fresh_emulator: Any, make_manager: ManagerFactory
) -> None:
    fresh_emulator.fail_next_token_requests(1, status=503)
    manager = await make_manager(_secret_config(fresh_emulator))
    results = await asyncio.gather(*(manager.token() for _ in range(20)), return_exceptions=True)
    assert all(isinstance(result, TokenUnavailableError) for result in results)
    assert "503" in str(results[0])
    for _ in range(20):  # right after the failure: the same error, no new request
        with pytest.raises(TokenUnavailableError):
            await manager.token()
    assert _requests(fresh_emulator) == 1
    await asyncio.sleep(FAST_BACKOFF.initial * (1 + FAST_BACKOFF.jitter))  # one backoff step
    assert (await manager.token()).get_secret_value()
    assert _requests(fresh_emulator) == 2


async def test_token_manager_slow_authority_times_out_as_unavailable(
    fresh_emulator: Any, make_manager: ManagerFactory
) -> None:
    fresh_emulator.delay_next_token_requests(1, 2)
    manager = await make_manager(_secret_config(fresh_emulator, timeout_seconds=0.3))
    started = time.monotonic()
    with pytest.raises(TokenUnavailableError) as caught:
        await manager.token()
    assert caught.value.cause == "Entra ID token request timed out after 0.3 s"
    assert time.monotonic() - started < 1.5


async def test_token_manager_invalidate_after_revoke_gets_new_token(
    fresh_emulator: Any, make_manager: ManagerFactory
) -> None:
    manager = await make_manager(_secret_config(fresh_emulator))
    first = await manager.token()
    fresh_emulator.revoke_all_tokens()
    assert await _accepted_by_azure(fresh_emulator, first) == 401
    assert (await manager.token()).get_secret_value() == first.get_secret_value()  # still cached
    manager.invalidate(first)
    second = await manager.token()
    assert second.get_secret_value() != first.get_secret_value()
    assert _requests(fresh_emulator) == 2
    assert await _accepted_by_azure(fresh_emulator, second) == 200
    manager.invalidate(first)  # a late second 401 for the old token changes nothing
    assert (await manager.token()).get_secret_value() == second.get_secret_value()
    assert _requests(fresh_emulator) == 2


async def test_token_manager_debug_logs_hold_no_secret_or_token(
    fresh_emulator: Any, make_manager: ManagerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("azure", "azure.identity", "azure.core", "msal", "llama_entra"):
        caplog.set_level(logging.DEBUG, logger=name)
    good = await make_manager(_secret_config(fresh_emulator))
    token = await good.token()
    good.invalidate(token)
    second = await good.token()
    bad = await make_manager(_secret_config(fresh_emulator, client_secret="wrong-s3cr3t-value"))
    with pytest.raises(TokenRejectedError):
        await bad.token()
    chained = await make_manager(_certificate_config(fresh_emulator, send_certificate_chain=True))
    third = await chained.token()
    text = caplog.text
    assert "fetched: expires in" in text  # the capture did see the fetches
    assert "AADSTS" in text
    for secret in (
        token.get_secret_value(),
        second.get_secret_value(),
        third.get_secret_value(),
        fresh_emulator.client_secret,
        "wrong-s3cr3t-value",
    ):
        assert secret not in text


async def test_create_token_manager_makes_no_request_until_used(
    fresh_emulator: Any,
) -> None:
    manager = create_token_manager(_secret_config(fresh_emulator))
    await manager.start()
    await asyncio.sleep(0.1)  # give the background task a chance to (wrongly) fetch
    assert _requests(fresh_emulator) == 0
    assert (await manager.token()).get_secret_value()
    assert _requests(fresh_emulator) == 1
    await manager.aclose()


async def test_token_manager_workload_identity_from_standard_env_vars(
    fresh_emulator: Any,
    make_manager: ManagerFactory,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text(fresh_emulator.federated_token())
    # what the AKS workload identity webhook injects into the pod
    monkeypatch.setenv("AZURE_TENANT_ID", fresh_emulator.tenant_id)
    monkeypatch.setenv("AZURE_CLIENT_ID", fresh_emulator.client_id)
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", fresh_emulator.url)
    config = AzureEntraIdConfig.model_validate(
        {"credential": "workload_identity", "ca_bundle": str(fresh_emulator.ca_path)}
    )
    manager = await make_manager(config)
    token = await manager.token()
    assert fresh_emulator.counters()["token_requests_by_client"] == {fresh_emulator.client_id: 1}
    assert await _accepted_by_azure(fresh_emulator, token) == 200


async def test_token_manager_workload_identity_with_forged_token_file_is_rejected(
    fresh_emulator: Any, make_manager: ManagerFactory, tmp_path: Any
) -> None:
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text(jwt.encode({"sub": "x", "aud": "y", "exp": 4102444800}, "k" * 32))
    config = _secret_config(
        fresh_emulator,
        credential="workload_identity",
        client_secret=None,
        federated_token_file=str(token_file),
    )
    manager = await make_manager(config)
    with pytest.raises(TokenRejectedError) as raised:
        await manager.token()
    assert "AADSTS70021" in str(raised.value)


async def test_token_manager_managed_identity_from_app_service_env_vars(
    fresh_emulator: Any, make_manager: ManagerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDENTITY_ENDPOINT", fresh_emulator.managed_identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", fresh_emulator.managed_identity_header)
    config = AzureEntraIdConfig.model_validate(
        {"credential": "managed_identity", "ca_bundle": str(fresh_emulator.ca_path)}
    )
    manager = await make_manager(config)
    tokens = await asyncio.gather(*(manager.token() for _ in range(20)))
    assert len({token.get_secret_value() for token in tokens}) == 1
    assert fresh_emulator.counters()["token_requests_by_client"] == {"system-assigned": 1}
    assert await _accepted_by_azure(fresh_emulator, tokens[0]) == 200


async def test_token_manager_managed_identity_with_wrong_header_is_not_served(
    fresh_emulator: Any, make_manager: ManagerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDENTITY_ENDPOINT", fresh_emulator.managed_identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", "not-the-header")
    config = AzureEntraIdConfig.model_validate(
        {"credential": "managed_identity", "ca_bundle": str(fresh_emulator.ca_path)}
    )
    manager = await make_manager(config)
    with pytest.raises((TokenRejectedError, TokenUnavailableError)):
        await manager.token()
    assert not manager.status().has_token

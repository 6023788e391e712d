"""End-to-end: the sidecar proxy with per-user identity (on-behalf-of).

The proxy validates the caller's bearer token (``jwk``), exchanges it for the user's Azure
token and sends that upstream instead of its own; the emulator counts Azure calls by the
token's ``oid``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from support.emulator import EmulatorHandle
from support.metrics import metric
from support.obo import REFUSED_ASSERTIONS, obo_settings
from support.proxy import ProxyFactory

_CACHE_SIZE = 4


@pytest.fixture
def obo_proxy(fresh_emulator: EmulatorHandle, proxy: ProxyFactory) -> Iterator[str]:
    """A proxy in front of the emulator that sends each caller's own identity."""
    entra, extra = obo_settings(fresh_emulator, _CACHE_SIZE)
    with proxy(entra=entra, extra=extra) as url:
        yield url


def _user(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _chats(proxy: str, token: str, count: int) -> list[httpx.Response]:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=proxy, timeout=60) as client:
        return await asyncio.gather(
            *(client.post("/chat/completions", json=body, headers=headers) for _ in range(count))
        )


def test_proxy_sends_each_users_own_identity_one_exchange_per_user(
    obo_proxy: str, fresh_emulator: EmulatorHandle
) -> None:
    emulator = fresh_emulator
    alice, bob = _user("alice"), _user("bob")
    alice_token, bob_token = emulator.user_token(alice), emulator.user_token(bob)

    async def both() -> list[list[httpx.Response]]:
        return list(
            await asyncio.gather(
                _chats(obo_proxy, alice_token, 50), _chats(obo_proxy, bob_token, 5)
            )
        )

    from_alice, from_bob = asyncio.run(both())
    assert all(r.status_code == 200 for r in from_alice + from_bob), from_alice[0].text
    users = emulator.users()
    assert users["azure_calls_by_object_id"] == {
        emulator.user_object_id(alice): 50,
        emulator.user_object_id(bob): 5,
    }
    assert users["exchanges_by_object_id"] == {
        emulator.user_object_id(alice): 1,
        emulator.user_object_id(bob): 1,
    }
    assert metric(obo_proxy, "llama_entra_obo_exchanges_total", outcome="ok") == 2


@REFUSED_ASSERTIONS
def test_proxy_refused_assertions_get_their_documented_answer(
    obo_proxy: str,
    fresh_emulator: EmulatorHandle,
    options: dict[str, Any],
    status: int,
    phrase: str,
) -> None:
    token = fresh_emulator.user_token(_user("frank"), **options)
    response = asyncio.run(_chats(obo_proxy, token, 1))[0]
    assert response.status_code == status, response.text
    assert phrase in response.json()["detail"]["cause"]
    assert fresh_emulator.users()["azure_calls_by_object_id"] == {}


def test_proxy_consent_required_is_403_and_missing_role_is_azures_answer_for_that_user(
    obo_proxy: str, fresh_emulator: EmulatorHandle
) -> None:
    emulator, grace, heidi = fresh_emulator, _user("grace"), _user("heidi")
    emulator.set_consent(grace, granted=False)
    refused = asyncio.run(_chats(obo_proxy, emulator.user_token(grace), 1))[0]
    assert refused.status_code == 403, refused.text
    assert "user_impersonation" in refused.json()["detail"]["cause"]
    emulator.set_role(emulator.user_object_id(heidi), assigned=False)
    denied = asyncio.run(_chats(obo_proxy, emulator.user_token(heidi), 1))[0]
    # The proxy relays Azure's own answer, as for its own identity: the SDK reads it.
    assert denied.status_code == 401
    assert denied.json()["error"]["code"] == "PermissionDenied"
    assert emulator.users()["azure_calls_by_object_id"] == {emulator.user_object_id(heidi): 2}


def test_proxy_app_callers_service_lets_app_only_tokens_use_the_proxys_identity(
    fresh_emulator: EmulatorHandle, proxy: ProxyFactory
) -> None:
    emulator = fresh_emulator
    entra, extra = obo_settings(emulator, _CACHE_SIZE)
    with proxy(entra=entra | {"app_callers": "service"}, extra=extra) as url:
        app = emulator.user_token(_user("batch-job"), app_only=True)
        user = _user("kim")
        responses = asyncio.run(_chats(url, app, 2)) + asyncio.run(
            _chats(url, emulator.user_token(user), 1)
        )
    assert [r.status_code for r in responses] == [200] * 3
    assert emulator.users()["azure_calls_by_object_id"] == {
        emulator.client_object_id: 2,
        emulator.user_object_id(user): 1,
    }

"""Unit: the Entra auth flow attaches tokens per request and retries once after Azure's 401."""

from __future__ import annotations

import asyncio

import httpx

from llama_entra.provider.auth import EntraAuthFlow
from support.entra import FakeClock, FakeEntra, fake_manager


class _Auth(EntraAuthFlow[httpx.Request, httpx.Response], httpx.Auth):
    """The flow as an httpx.Auth, as the llama-stack backend builds it."""


def _azure(accepted: set[str], seen: list[str]) -> httpx.MockTransport:
    """Azure stand-in: 200 for an accepted bearer, else 401 (Azure's answer)."""

    def handle(request: httpx.Request) -> httpx.Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        seen.append(token)
        assert "api-key" not in request.headers
        if token in accepted:
            return httpx.Response(200, json={"ok": token})
        return httpx.Response(401, json={"error": {"code": "401", "message": "Unauthorized."}})

    return httpx.MockTransport(handle)


async def test_auth_flow_attaches_the_current_token_and_drops_an_api_key() -> None:
    entra = FakeEntra(FakeClock())
    seen: list[str] = []
    auth = _Auth(fake_manager(entra))
    async with httpx.AsyncClient(auth=auth, transport=_azure({"token-1"}, seen)) as client:
        first = await client.post("https://azure/x", headers={"api-key": "k"}, json={})
        second = await client.post("https://azure/x", json={})
    assert (first.status_code, second.status_code) == (200, 200)
    assert seen == ["token-1", "token-1"]
    assert entra.requests == 1
    assert auth.unauthorized_retries == 0


async def test_auth_flow_on_401_drops_the_token_fetches_one_and_resends_once() -> None:
    entra = FakeEntra(FakeClock())
    seen: list[str] = []
    auth = _Auth(fake_manager(entra))
    async with httpx.AsyncClient(auth=auth, transport=_azure({"token-2"}, seen)) as client:
        response = await client.post("https://azure/x", json={"n": 1})
    assert response.status_code == 200
    assert response.json() == {"ok": "token-2"}
    assert seen == ["token-1", "token-2"]
    assert entra.requests == 2
    assert auth.unauthorized_retries == 1


async def test_auth_flow_second_401_is_returned_not_retried_again() -> None:
    entra = FakeEntra(FakeClock())
    seen: list[str] = []
    async with httpx.AsyncClient(
        auth=_Auth(fake_manager(entra)), transport=_azure(set(), seen)
    ) as client:
        response = await client.post("https://azure/x", json={})
    assert response.status_code == 401
    assert seen == ["token-1", "token-2"]


async def test_auth_flow_concurrent_401s_share_one_new_token() -> None:
    entra = FakeEntra(FakeClock())
    seen: list[str] = []
    manager = fake_manager(entra)
    await manager.token()  # token-1, about to be refused
    async with httpx.AsyncClient(
        auth=_Auth(manager), transport=_azure({"token-2"}, seen)
    ) as client:
        responses = await asyncio.gather(
            *(client.post("https://azure/x", json={"i": i}) for i in range(10))
        )
    assert [r.status_code for r in responses] == [200] * 10
    assert entra.requests == 2


async def test_auth_flow_other_errors_pass_through_without_a_new_token() -> None:
    entra = FakeEntra(FakeClock())

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"retry-after": "1"})

    async with httpx.AsyncClient(
        auth=_Auth(fake_manager(entra)), transport=httpx.MockTransport(handle)
    ) as client:
        response = await client.post("https://azure/x", json={})
    assert response.status_code == 429
    assert entra.requests == 1


async def test_auth_flow_permission_denied_is_returned_without_a_new_token() -> None:
    entra = FakeEntra(FakeClock())
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        body = {"error": {"code": "PermissionDenied", "message": "Principal does not have..."}}
        return httpx.Response(401, json=body)

    auth = _Auth(fake_manager(entra))
    async with httpx.AsyncClient(auth=auth, transport=httpx.MockTransport(handle)) as client:
        response = await client.post("https://azure/x", json={})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "PermissionDenied"
    assert seen == ["Bearer token-1"]
    assert entra.requests == 1
    assert (auth.permission_denied, auth.unauthorized_retries) == (1, 0)

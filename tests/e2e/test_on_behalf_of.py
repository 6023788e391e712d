"""End-to-end: per-user Azure identity (on-behalf-of), library and service mode.

The emulator mints access tokens of test users for the demo app; the service validates them
(``jwk`` against the emulator's keys), exchanges each user's token with Entra's on-behalf-of
grant, and sends the user's token to Azure OpenAI, whose calls the emulator counts by the
token's ``oid``. Each test uses users of its own (the service's cache outlives a test).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.emulator import EmulatorHandle
from support.metrics import metric
from support.obo import REFUSED_ASSERTIONS, obo_settings
from support.service import (
    ServiceHandle,
    service_config,
    stack_environment,
    start_service,
    start_service_mode,
)

pytestmark = pytest.mark.slow

_ROLE = "Cognitive Services OpenAI User"
_CACHE_SIZE = 8
_JWT = re.compile(r"ey[A-Za-z0-9_-]{10,}\.ey[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]+")


@pytest.fixture(scope="module")
def library_obo(
    emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceHandle]:
    """A library-mode service whose Azure calls carry each caller's own identity."""
    directory = tmp_path_factory.mktemp("obo-library")
    entra, extra = obo_settings(emulator, _CACHE_SIZE)
    path = service_config(directory, emulator, entra=entra, extra=extra)
    with start_service(path, stack_environment(emulator, directory / "state")) as handle:
        yield handle


@pytest.fixture(scope="module")
def service_obo(
    emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceHandle]:
    """The same in service mode, in front of a Llama Stack server (the entrypoint's): the
    user's token travels in the provider data of each call to the server."""
    directory = tmp_path_factory.mktemp("obo-service")
    entra, extra = obo_settings(emulator, _CACHE_SIZE)
    with start_service_mode(emulator, directory, entra=entra, extra=extra) as handle:
        yield handle


@pytest.fixture(params=["library", "service"])
def obo(request: pytest.FixtureRequest) -> ServiceHandle:
    """Either mode's on-behalf-of service."""
    handle: ServiceHandle = request.getfixturevalue(f"{request.param}_obo")
    return handle


def _user(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _queries(service: ServiceHandle, token: str, count: int) -> list[httpx.Response]:
    body = {"query": "hello", "generate_topic_summary": False}
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=service.url, timeout=120) as client:
        return await asyncio.gather(
            *(client.post("/v1/query", json=body, headers=headers) for _ in range(count))
        )


def _query(service: ServiceHandle, token: str) -> httpx.Response:
    return asyncio.run(_queries(service, token, 1))[0]


def test_two_users_in_parallel_each_reach_azure_as_themselves(
    obo: ServiceHandle, fresh_emulator: EmulatorHandle
) -> None:
    emulator = fresh_emulator
    alice, bob = _user("alice"), _user("bob")
    alice_token, bob_token = emulator.user_token(alice), emulator.user_token(bob)

    async def both() -> tuple[list[httpx.Response], list[httpx.Response]]:
        return await asyncio.gather(_queries(obo, alice_token, 10), _queries(obo, bob_token, 10))

    from_alice, from_bob = asyncio.run(both())
    assert all(r.status_code == 200 for r in from_alice + from_bob), from_alice[0].text
    users = emulator.users()
    calls = users["azure_calls_by_object_id"]
    assert calls.get(emulator.user_object_id(alice)) == 10
    assert calls.get(emulator.user_object_id(bob)) == 10
    assert emulator.client_object_id not in calls  # nothing went as the service itself
    assert users["exchanges_by_object_id"] == {
        emulator.user_object_id(alice): 1,
        emulator.user_object_id(bob): 1,
    }
    # Each user's conversations are theirs: the principal is the user's object id.
    listed = httpx.get(
        f"{obo.url}/v2/conversations",
        headers={"Authorization": f"Bearer {bob_token}"},
        timeout=30,
    )
    mine = {c["conversation_id"] for c in listed.json()["conversations"]}
    assert mine >= {r.json()["conversation_id"] for r in from_bob}
    assert not mine & {r.json()["conversation_id"] for r in from_alice}


def test_streamed_and_openai_routes_reach_azure_as_the_user(
    obo: ServiceHandle, fresh_emulator: EmulatorHandle
) -> None:
    emulator, judy = fresh_emulator, _user("judy")
    headers = {"Authorization": f"Bearer {emulator.user_token(judy)}"}
    with httpx.Client(base_url=obo.url, headers=headers, timeout=120) as client:
        streamed = client.post(
            "/v1/streaming_query", json={"query": "hi", "generate_topic_summary": False}
        )
        assert streamed.status_code == 200
        assert '"event": "end"' in streamed.text, streamed.text
        chat = {"model": emulator.model, "messages": [{"role": "user", "content": "hi"}]}
        assert client.post("/v1/chat/completions", json=chat).status_code == 200
        with client.stream("POST", "/v1/chat/completions", json=chat | {"stream": True}) as sse:
            assert sse.status_code == 200
            assert "[DONE]" in "".join(sse.iter_text())
    calls = emulator.users()["azure_calls_by_object_id"]
    assert calls == {emulator.user_object_id(judy): 3}


def test_background_topic_summary_runs_as_the_requests_user(
    library_obo: ServiceHandle, fresh_emulator: EmulatorHandle
) -> None:
    emulator, kate = fresh_emulator, _user("kate")
    response = httpx.post(
        f"{library_obo.url}/v1/query",
        json={"query": "hello", "generate_topic_summary": True},
        headers={"Authorization": f"Bearer {emulator.user_token(kate)}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    deadline = time.monotonic() + 30
    calls: dict[str, int] = {}
    while time.monotonic() < deadline:  # the summary is a call after the answer
        calls = emulator.users()["azure_calls_by_object_id"]
        if sum(calls.values()) >= 2:
            break
        time.sleep(0.05)
    assert calls == {emulator.user_object_id(kate): 2}


def test_burst_of_fifty_requests_from_a_new_user_makes_one_exchange(
    obo: ServiceHandle, fresh_emulator: EmulatorHandle
) -> None:
    emulator, carol = fresh_emulator, _user("carol")
    responses = asyncio.run(_queries(obo, emulator.user_token(carol), 50))
    assert [r.status_code for r in responses] == [200] * 50, responses[0].text
    users = emulator.users()
    assert users["exchanges_by_object_id"] == {emulator.user_object_id(carol): 1}
    assert users["azure_calls_by_object_id"][emulator.user_object_id(carol)] == 50


def test_user_without_the_role_gets_403_naming_it_while_another_user_succeeds(
    obo: ServiceHandle, fresh_emulator: EmulatorHandle
) -> None:
    emulator, dave, erin = fresh_emulator, _user("dave"), _user("erin")
    emulator.set_role(emulator.user_object_id(dave), assigned=False)
    dave_token, erin_token = emulator.user_token(dave), emulator.user_token(erin)

    async def both() -> tuple[list[httpx.Response], list[httpx.Response]]:
        return await asyncio.gather(_queries(obo, dave_token, 3), _queries(obo, erin_token, 3))

    denied, served = asyncio.run(both())
    assert [r.status_code for r in served] == [200] * 3
    for response in denied:
        assert response.status_code == 403, response.text
        cause = response.json()["detail"]["cause"]
        assert _ROLE in cause
        assert emulator.user_object_id(dave) in cause
    # The service stays ready: one user's missing role is not the service's problem.
    assert httpx.get(f"{obo.url}/readiness", timeout=30).status_code == 200


@REFUSED_ASSERTIONS
def test_refused_assertions_get_their_documented_answer(
    obo: ServiceHandle,
    fresh_emulator: EmulatorHandle,
    options: dict[str, Any],
    status: int,
    phrase: str,
) -> None:
    emulator = fresh_emulator
    response = _query(obo, emulator.user_token(_user("frank"), **options))
    assert response.status_code == status, response.text
    assert phrase in response.json()["detail"]["cause"]
    assert emulator.users()["azure_calls_by_object_id"] == {}


def test_consent_required_is_403_naming_the_missing_consent(
    obo: ServiceHandle, fresh_emulator: EmulatorHandle
) -> None:
    emulator, grace = fresh_emulator, _user("grace")
    emulator.set_consent(grace, granted=False)
    response = _query(obo, emulator.user_token(grace))
    assert response.status_code == 403, response.text
    cause = response.json()["detail"]["cause"]
    assert "AADSTS65001" in cause
    assert "user_impersonation" in cause
    streamed = httpx.post(
        f"{obo.url}/v1/streaming_query",
        json={"query": "hi", "generate_topic_summary": False},
        headers={"Authorization": f"Bearer {emulator.user_token(grace)}"},
        timeout=60,
    )
    assert streamed.status_code == 403, streamed.text
    emulator.set_consent(grace, granted=True)
    assert _query(obo, emulator.user_token(grace)).status_code == 200


def test_entra_down_is_503_for_a_new_user(
    obo: ServiceHandle, fresh_emulator: EmulatorHandle
) -> None:
    emulator, heidi = fresh_emulator, _user("heidi")
    token = emulator.user_token(heidi)
    emulator.set_entra_down(True)
    try:
        response = _query(obo, token)
    finally:
        emulator.set_entra_down(False)
    assert response.status_code == 503, response.text
    assert "Entra ID" in response.json()["detail"]["response"]


def test_cache_stays_within_its_bound_under_many_users(
    library_obo: ServiceHandle, fresh_emulator: EmulatorHandle
) -> None:
    emulator = fresh_emulator
    names = [_user("many") for _ in range(3 * _CACHE_SIZE)]
    for name in names:
        assert _query(library_obo, emulator.user_token(name)).status_code == 200
        assert metric(library_obo.url, "llama_entra_obo_cached_users") <= _CACHE_SIZE
    assert metric(library_obo.url, "llama_entra_obo_cached_users") == _CACHE_SIZE
    headers = {"Authorization": f"Bearer {emulator.user_token(names[-1])}"}
    info = httpx.get(f"{library_obo.url}/v1/info", headers=headers, timeout=10).json()["entra_id"]
    assert (info["user_identity"], info["cached_users"]) == ("on_behalf_of", _CACHE_SIZE)
    # The first user was evicted long ago: the next call exchanges again.
    assert _query(library_obo, emulator.user_token(names[0])).status_code == 200
    assert emulator.users()["exchanges_by_object_id"][emulator.user_object_id(names[0])] == 2


def test_no_user_or_azure_token_reaches_the_logs(
    obo: ServiceHandle, fresh_emulator: EmulatorHandle
) -> None:
    emulator = fresh_emulator
    assertion = emulator.user_token(_user("ivan"))
    assert _query(obo, assertion).status_code == 200
    sent = emulator.last_request_headers()[-1]["authorization"].removeprefix("Bearer ")
    logs = Path(obo.log_path).read_text(errors="replace")  # written at debug level
    assert assertion not in logs
    assert sent not in logs
    assert not _JWT.search(logs)

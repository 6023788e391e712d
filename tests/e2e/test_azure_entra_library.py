"""End-to-end: llama-entra's service in library mode on ``run-configs/azure-entra.yaml``.

The service config has no ``azure_entra_id``: the in-process ``remote::azure-entra`` provider
holds the identity (from the azure-identity variables) and gets its own tokens, so the service
sends no provider data at all. One service for the module; the tests run in file order (the
concurrency test needs the provider's first calls).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import openai
import pytest

from support.emulator import EmulatorHandle
from support.service import (
    ROOT,
    ServiceHandle,
    entra_identity_environment,
    service_config,
    stack_environment,
    start_service,
)

pytestmark = pytest.mark.slow


@dataclass
class LibraryService:
    """The running service and what was seen while it started."""

    service: ServiceHandle
    token_requests_at_start: int


@pytest.fixture(scope="module")
def library(
    emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LibraryService]:
    directory = tmp_path_factory.mktemp("azure-entra-library")
    path = service_config(
        directory,
        emulator,
        with_entra=False,
        run_config=ROOT / "run-configs" / "azure-entra.yaml",
    )
    env = stack_environment(emulator, directory / "state") | entra_identity_environment(emulator)
    emulator.reset()
    emulator.set_entra_down(True)
    try:
        with start_service(path, env) as service:
            started = emulator.counters()["token_requests"]
            emulator.reset()
            yield LibraryService(service, started)
    finally:
        emulator.reset()


def _query(service: ServiceHandle, text: str) -> httpx.Response:
    # No topic summary: a background Azure call would land in the tests' counts.
    body = {"query": text, "generate_topic_summary": False}
    return httpx.post(f"{service.url}/v1/query", json=body, timeout=60)


def test_library_service_starts_while_entra_is_down_and_its_models_need_no_header(
    library: LibraryService, emulator: EmulatorHandle
) -> None:
    assert library.token_requests_at_start == 0
    assert httpx.get(f"{library.service.url}/readiness").status_code == 200
    models = httpx.get(f"{library.service.url}/v1/models").json()["data"]
    chat = next(m for m in models if m["id"] == f"azure/{emulator.model}")
    assert chat["entra_auth"] is False  # the provider authenticates, not the service


def test_library_twenty_concurrent_first_queries_make_one_token_request(
    library: LibraryService, fresh_emulator: EmulatorHandle
) -> None:
    async def ask_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=library.service.url, timeout=60) as client:
            return await asyncio.gather(
                *(client.post("/v1/query", json={"query": f"lib {i}"}) for i in range(20))
            )

    responses = asyncio.run(ask_all())
    assert [r.status_code for r in responses] == [200] * 20
    assert [r.json()["response"] for r in responses] == [f"You said: lib {i}" for i in range(20)]
    assert fresh_emulator.counters()["token_requests"] == 1


def test_library_streaming_query_chat_stream_and_responses(
    library: LibraryService, fresh_emulator: EmulatorHandle
) -> None:
    streamed = httpx.post(
        f"{library.service.url}/v1/streaming_query", json={"query": "lib stream"}, timeout=60
    )
    events = [json.loads(x[6:]) for x in streamed.text.splitlines() if x.startswith("data: ")]
    tokens = "".join(e["data"]["token"] for e in events if e["event"] == "token")
    assert tokens == "You said: lib stream"
    client = openai.OpenAI(base_url=f"{library.service.url}/v1", api_key="unused", max_retries=0)
    chunks = client.chat.completions.create(
        model=f"azure/{fresh_emulator.model}",
        messages=[{"role": "user", "content": "sdk stream"}],
        stream=True,
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "You said: sdk stream"
    response = client.responses.create(model=f"azure/{fresh_emulator.model}", input="resp")
    assert response.output_text == "You said: resp"
    assert fresh_emulator.counters()["token_requests"] == 0


def test_library_revoked_token_costs_one_refresh(
    library: LibraryService, fresh_emulator: EmulatorHandle
) -> None:
    assert _query(library.service, "warm").status_code == 200
    fresh_emulator.reset()
    fresh_emulator.revoke_all_tokens()
    answer = _query(library.service, "after revoke")
    assert answer.status_code == 200, answer.text
    assert answer.json()["response"] == "You said: after revoke"
    assert fresh_emulator.counters()["token_requests"] == 1


def test_library_entra_down_gives_503_naming_entra_then_recovers(
    library: LibraryService, fresh_emulator: EmulatorHandle
) -> None:
    fresh_emulator.revoke_all_tokens()
    fresh_emulator.set_entra_down(True)
    down = _query(library.service, "while down")
    assert down.status_code == 503, down.text
    detail = down.json()["detail"]
    assert detail["response"] == "Entra ID token unavailable"
    assert "AADSTS" in detail["cause"]
    fresh_emulator.set_entra_down(False)
    deadline = time.monotonic() + 10
    while (answer := _query(library.service, "healed")).status_code != 200:
        assert answer.status_code == 503
        assert time.monotonic() < deadline, "no recovery within 10 s"
        time.sleep(0.2)
    assert answer.json()["response"] == "You said: healed"


def test_library_log_holds_no_secret_or_token(
    library: LibraryService, fresh_emulator: EmulatorHandle
) -> None:
    assert _query(library.service, "log check").status_code == 200
    token = fresh_emulator.last_request_headers()[-1]["authorization"].removeprefix("Bearer ")
    log = library.service.logs()
    assert "Entra ID token" in log
    assert fresh_emulator.client_secret not in log
    assert token not in log


def test_library_429_is_retried_by_the_provider_alone_not_again_by_the_service(
    library: LibraryService, fresh_emulator: EmulatorHandle
) -> None:
    """One layer applies the retry policy: the provider (its errors are final), not both.

    No topic summary: it would be a second Azure call, made in the background."""
    url = f"{library.service.url}/v1/query"
    warm = {"query": "warm", "generate_topic_summary": False}
    assert httpx.post(url, json=warm, timeout=60).status_code == 200
    fresh_emulator.reset()
    fresh_emulator.throttle_next(10, retry_after=1)
    body = {"query": "throttled throughout", "generate_topic_summary": False}
    response = httpx.post(url, json=body, timeout=60)
    assert response.status_code == 429, response.text
    assert response.headers["retry-after"] == "1"
    assert "x-ratelimit-remaining-tokens" in response.headers
    # 1 + the provider's 2 retries; a second layer would have made 9.
    assert fresh_emulator.azure_calls(fresh_emulator.model)["throttled"] == 3

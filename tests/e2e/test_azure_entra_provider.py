"""End-to-end: ``remote::azure-entra`` in a real Llama Stack server (the installed backend).

One server for the module, started through the container entrypoint with
``--entra run-configs/azure-entra.yaml`` while Entra is down, its identity only in the standard
azure-identity variables. Clients talk to the server directly (the openai SDK, no token, no
provider data): the provider fetches, caches, refreshes and retries on its own.

The tests run in file order: the concurrency test needs the provider's first calls.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from support.emulator import EmulatorHandle
from support.service import (
    ROOT,
    ServiceHandle,
    entra_identity_environment,
    stack_environment,
    start_llama_stack,
)

pytestmark = pytest.mark.slow

RUN_CONFIG = ROOT / "run-configs" / "azure-entra.yaml"
DOCUMENT = b"Release notes. The launch codename of the project is BLUEWHALE; it ships in spring."


@dataclass
class EntraStack:
    """The running server and what was seen while it started."""

    server: ServiceHandle
    token_requests_at_start: int
    log_dir: Path


@pytest.fixture(scope="module")
def entra_stack(
    emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EntraStack]:
    directory = tmp_path_factory.mktemp("azure-entra-server")
    env = stack_environment(emulator, directory / "state") | entra_identity_environment(emulator)
    emulator.reset()
    emulator.set_entra_down(True)
    try:
        with start_llama_stack(None, env, run_config=RUN_CONFIG, log_dir=directory) as server:
            started = emulator.counters()["token_requests"]
            emulator.reset()
            yield EntraStack(server, started, directory)
    finally:
        emulator.reset()


def _client(stack: EntraStack) -> openai.OpenAI:
    # The SDK's default retries: a Llama Stack server closes the keep-alive connection after
    # answering with an error raised inside it (Starlette re-raises it for logging).
    return openai.OpenAI(base_url=f"{stack.server.url}/v1", api_key="no-token", max_retries=2)


def _model(emulator: EmulatorHandle) -> str:
    return f"azure/{emulator.model}"


def _ask(client: openai.OpenAI, emulator: EmulatorHandle, text: str) -> str:
    answer = client.chat.completions.create(
        model=_model(emulator), messages=[{"role": "user", "content": text}]
    )
    return answer.choices[0].message.content or ""


def test_server_starts_while_entra_is_down_without_a_token_request(
    entra_stack: EntraStack, emulator: EmulatorHandle
) -> None:
    assert entra_stack.token_requests_at_start == 0
    models = {m["id"]: m for m in httpx.get(f"{entra_stack.server.url}/v1/models").json()["data"]}
    assert _model(emulator) in models
    embedding = models[f"azure/{emulator.embedding_model}"]
    assert embedding["custom_metadata"]["model_type"] == "embedding"
    providers = httpx.get(f"{entra_stack.server.url}/v1/providers").text
    assert "remote::azure-entra" in providers
    assert emulator.client_secret not in providers


def test_twenty_concurrent_first_calls_make_one_token_request(
    entra_stack: EntraStack, fresh_emulator: EmulatorHandle
) -> None:
    client = _client(entra_stack)
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda i: _ask(client, fresh_emulator, f"first {i}"), range(20)))
    assert answers == [f"You said: first {i}" for i in range(20)]
    assert fresh_emulator.counters()["token_requests"] == 1


def test_openai_sdk_without_a_token_gets_plain_and_streamed_answers(
    entra_stack: EntraStack, fresh_emulator: EmulatorHandle
) -> None:
    client = _client(entra_stack)
    assert _ask(client, fresh_emulator, "plain call") == "You said: plain call"
    stream = client.chat.completions.create(
        model=_model(fresh_emulator),
        messages=[{"role": "user", "content": "streamed call"}],
        stream=True,
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "You said: streamed call"
    sent = fresh_emulator.last_request_headers()[-1]
    assert sent["authorization"].startswith("Bearer ey")  # an Entra token, not the SDK's key
    assert "no-token" not in sent["authorization"]


def test_revoked_token_costs_one_refresh_and_the_calls_succeed(
    entra_stack: EntraStack, fresh_emulator: EmulatorHandle
) -> None:
    client = _client(entra_stack)
    assert _ask(client, fresh_emulator, "warm").startswith("You said")
    fresh_emulator.reset()
    fresh_emulator.revoke_all_tokens()
    with ThreadPoolExecutor(max_workers=5) as pool:
        answers = list(pool.map(lambda i: _ask(client, fresh_emulator, f"again {i}"), range(5)))
    assert answers == [f"You said: again {i}" for i in range(5)]
    counters = fresh_emulator.counters()
    assert counters["token_requests"] == 1
    assert counters["unauthorized"] >= 1


def test_entra_down_gives_a_clear_error_then_recovers_without_restart(
    entra_stack: EntraStack, fresh_emulator: EmulatorHandle
) -> None:
    client = _client(entra_stack)
    fresh_emulator.revoke_all_tokens()  # the held token stops working: a new one is needed
    fresh_emulator.set_entra_down(True)
    with pytest.raises(openai.APIStatusError) as plain:
        _ask(client, fresh_emulator, "while down")
    assert plain.value.status_code == 503
    assert re.search(r"Entra ID token unavailable: .*AADSTS\d+", plain.value.message)
    with pytest.raises(openai.APIStatusError) as streamed:
        client.chat.completions.create(
            model=_model(fresh_emulator),
            messages=[{"role": "user", "content": "stream while down"}],
            stream=True,
        )
    assert streamed.value.status_code == 503
    assert "Entra ID" in streamed.value.message
    with pytest.raises(openai.APIStatusError) as embedding:
        client.embeddings.create(model=f"azure/{fresh_emulator.embedding_model}", input="x")
    assert embedding.value.status_code == 503
    fresh_emulator.set_entra_down(False)
    deadline = time.monotonic() + 10
    while True:  # the provider asks Entra again at most one second after a failure
        try:
            assert _ask(client, fresh_emulator, "healed") == "You said: healed"
            break
        except openai.APIStatusError as exc:
            assert exc.status_code == 503
            assert time.monotonic() < deadline, "no recovery within 10 s"
            time.sleep(0.2)


def test_embeddings_come_from_azure_through_the_provider(
    entra_stack: EntraStack, fresh_emulator: EmulatorHandle
) -> None:
    client = _client(entra_stack)
    model = f"azure/{fresh_emulator.embedding_model}"
    result = client.embeddings.create(model=model, input=["red apples", "red apples", "blue sky"])
    vectors = [item.embedding for item in result.data]
    assert [len(v) for v in vectors] == [fresh_emulator.embedding_dimension] * 3
    assert vectors[0] == vectors[1]
    assert vectors[0] != vectors[2]
    encoded = client.embeddings.create(model=model, input="red apples", encoding_format="base64")
    raw = encoded.data[0].embedding
    assert isinstance(raw, list) or base64.b64decode(str(raw))
    assert fresh_emulator.counters()["embeddings"] == 2


def test_file_in_a_vector_store_is_found_by_search_and_by_responses_file_search(
    entra_stack: EntraStack, fresh_emulator: EmulatorHandle
) -> None:
    client = _client(entra_stack)
    uploaded = client.files.create(file=("notes.txt", DOCUMENT), purpose="assistants")
    store = client.vector_stores.create(name="release-notes", file_ids=[uploaded.id])
    deadline = time.monotonic() + 30
    status = client.vector_stores.files.retrieve(vector_store_id=store.id, file_id=uploaded.id)
    while status.status == "in_progress" and time.monotonic() < deadline:
        time.sleep(0.2)
        status = client.vector_stores.files.retrieve(vector_store_id=store.id, file_id=uploaded.id)
    assert status.status == "completed", status.last_error
    assert fresh_emulator.counters()["embeddings"] >= 1  # ingestion embedded through Azure

    found = client.vector_stores.search(vector_store_id=store.id, query="launch codename")
    assert any("BLUEWHALE" in part.text for hit in found.data for part in hit.content)

    response = client.responses.create(
        model=_model(fresh_emulator),
        input="!call launch codename",
        tools=[{"type": "file_search", "vector_store_ids": [store.id]}],
    )
    assert [item.type for item in response.output] == ["file_search_call", "message"]
    assert "BLUEWHALE" in response.output_text
    assert fresh_emulator.counters()["token_requests"] == 0  # the held token served it all


def test_no_secret_or_token_in_the_server_log(
    entra_stack: EntraStack, fresh_emulator: EmulatorHandle
) -> None:
    client = _client(entra_stack)
    assert _ask(client, fresh_emulator, "log check").startswith("You said")
    tokens = {
        header["authorization"].removeprefix("Bearer ")
        for header in fresh_emulator.last_request_headers()
        if header.get("authorization", "").startswith("Bearer ")
    }
    assert tokens
    log = entra_stack.server.logs()
    assert "Entra ID token request for" in log  # the provider's warnings (Entra down) are there
    assert fresh_emulator.client_secret not in log
    for token in tokens:
        assert token not in log
        assert token.split(".")[-1] not in log  # not even the signature


def test_missing_role_costs_no_refresh_and_names_role_and_principal(
    entra_stack: EntraStack, fresh_emulator: EmulatorHandle
) -> None:
    assert _ask(_client(entra_stack), fresh_emulator, "warm").startswith("You said")
    fresh_emulator.reset()
    fresh_emulator.set_role(fresh_emulator.client_object_id, assigned=False)
    try:
        # No SDK retries here: the one 502 must come from one Azure call.
        once = openai.OpenAI(base_url=f"{entra_stack.server.url}/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.APIStatusError) as caught:
            _ask(once, fresh_emulator, "no role")
        assert caught.value.status_code == 502
        message = str(caught.value.message)
        assert "Cognitive Services OpenAI User" in message
        assert fresh_emulator.client_object_id in message
        counters = fresh_emulator.counters()
        assert counters["token_requests"] == 0
        assert fresh_emulator.azure_calls(fresh_emulator.model)["permission_denied"] == 1
    finally:
        fresh_emulator.set_role(fresh_emulator.client_object_id, assigned=True)
    assert _ask(_client(entra_stack), fresh_emulator, "role back") == "You said: role back"


def test_provider_sleeps_a_short_azure_wait_itself_and_answers(
    entra_stack: EntraStack, fresh_emulator: EmulatorHandle
) -> None:
    """The provider applies the retry policy (``azure_entra_id.retries``: 2 more calls, 10 s)."""
    assert _ask(_client(entra_stack), fresh_emulator, "warm").startswith("You said")
    fresh_emulator.reset()
    fresh_emulator.throttle_next(1, retry_after=1)
    once = openai.OpenAI(base_url=f"{entra_stack.server.url}/v1", api_key="x", max_retries=0)
    started = time.monotonic()
    assert _ask(once, fresh_emulator, "after a wait") == "You said: after a wait"
    assert time.monotonic() - started >= 1.0
    calls = fresh_emulator.azure_calls(fresh_emulator.model)
    assert (calls["throttled"], calls["ok"]) == (1, 1)
    assert fresh_emulator.counters()["token_requests"] == 0


def test_provider_passes_a_long_azure_wait_on_at_once_as_a_429_with_the_wait(
    entra_stack: EntraStack, fresh_emulator: EmulatorHandle
) -> None:
    assert _ask(_client(entra_stack), fresh_emulator, "warm").startswith("You said")
    fresh_emulator.reset()
    fresh_emulator.throttle_next(5, retry_after=300)
    once = openai.OpenAI(base_url=f"{entra_stack.server.url}/v1", api_key="x", max_retries=0)
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError) as caught:
        _ask(once, fresh_emulator, "throttled")
    assert time.monotonic() - started < 5
    assert "Please retry after 300 seconds" in str(caught.value.message)
    assert fresh_emulator.azure_calls(fresh_emulator.model)["throttled"] == 1
    fresh_emulator.reset()
    fresh_emulator.throttle_next(10, retry_after=1)
    with pytest.raises(openai.RateLimitError):
        _ask(once, fresh_emulator, "throttled throughout")
    assert fresh_emulator.azure_calls(fresh_emulator.model)["throttled"] == 3  # 1 + 2 retries

"""End-to-end: service mode, a real Llama Stack server started by the container entrypoint.

The Llama Stack server runs from the enriched ``run-configs/azure.yaml`` with no credential at
all; llama-entra in service mode adds the Entra token per call.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from llama_entra.backends import PROVIDER_DATA_HEADERS
from support.emulator import EmulatorHandle
from support.service import (
    ServiceHandle,
    free_port,
    service_config,
    stack_environment,
    start_llama_stack,
    start_service,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack_env(emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("service-mode")
    return stack_environment(emulator, directory / "stack-state") | {"_DIR": str(directory)}


@pytest.fixture(scope="module")
def llama_stack(emulator: EmulatorHandle, stack_env: dict[str, str]) -> Iterator[ServiceHandle]:
    directory = Path(stack_env["_DIR"])
    (directory / "stack").mkdir(exist_ok=True)
    config = service_config(directory / "stack", emulator)
    with start_llama_stack(config, stack_env) as handle:
        yield handle


@pytest.fixture(scope="module")
def service(
    emulator: EmulatorHandle, llama_stack: ServiceHandle, stack_env: dict[str, str]
) -> Iterator[ServiceHandle]:
    directory = Path(stack_env["_DIR"]) / "service"
    directory.mkdir(exist_ok=True)
    path = service_config(directory, emulator, mode="service", llama_stack_url=llama_stack.url)
    with start_service(path, stack_env) as handle:
        yield handle


def test_llama_stack_server_started_without_any_credential(
    llama_stack: ServiceHandle, emulator: EmulatorHandle
) -> None:
    assert httpx.get(f"{llama_stack.url}/v1/health").json()["status"] == "OK"
    models = httpx.get(f"{llama_stack.url}/v1/models").json()["data"]
    assert f"azure/{emulator.model}" in [model["id"] for model in models]
    # Without provider data the server has no key to send: Azure is never reached with one.
    direct = httpx.post(
        f"{llama_stack.url}/v1/chat/completions",
        json={"model": f"azure/{emulator.model}", "messages": [{"role": "user", "content": "x"}]},
        timeout=30,
    )
    assert direct.status_code >= 400


def test_service_mode_query_stream_and_openai_sdk(
    service: ServiceHandle, fresh_emulator: EmulatorHandle
) -> None:
    answer = httpx.post(f"{service.url}/v1/query", json={"query": "via server"}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["response"] == "You said: via server"
    assert fresh_emulator.counters()["token_requests"] <= 1
    client = openai.OpenAI(base_url=f"{service.url}/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model=f"azure/{fresh_emulator.model}",
        messages=[{"role": "user", "content": "server stream"}],
        stream=True,
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "You said: server stream"


@pytest.mark.parametrize("header", PROVIDER_DATA_HEADERS)
def test_service_mode_callers_provider_data_never_reaches_azure(
    service: ServiceHandle, fresh_emulator: EmulatorHandle, header: str
) -> None:
    forged = json.dumps({"azure_api_key": "attacker-key", "azure_api_base": "https://evil.test/v1"})
    response = httpx.post(
        f"{service.url}/v1/query",
        json={"query": "redirect me"},
        headers={header: forged, "api-key": "attacker-key"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    sent = fresh_emulator.last_request_headers()[-1]
    assert "attacker-key" not in json.dumps(sent)
    assert sent["authorization"].startswith("Bearer ey")  # an Entra token the emulator issued


def test_service_mode_revoked_token_streaming_refreshes_once(
    service: ServiceHandle, fresh_emulator: EmulatorHandle
) -> None:
    # No topic summary: a background Azure call that would land in the counts below.
    warm = {"query": "warm", "generate_topic_summary": False}
    assert httpx.post(f"{service.url}/v1/query", json=warm, timeout=30).is_success
    fresh_emulator.reset()
    fresh_emulator.revoke_all_tokens()
    response = httpx.post(
        f"{service.url}/v1/streaming_query", json={"query": "after revoke"}, timeout=30
    )
    assert response.status_code == 200, response.text
    events = [json.loads(x[6:]) for x in response.text.splitlines() if x.startswith("data: ")]
    tokens = [e["data"]["token"] for e in events if e["event"] == "token"]
    assert "".join(tokens) == "You said: after revoke"
    assert fresh_emulator.counters()["token_requests"] == 1
    plain = httpx.post(f"{service.url}/v1/query", json={"query": "still fine"}, timeout=30)
    assert plain.status_code == 200


def test_service_mode_llama_stack_down_gives_503_and_probes_say_so(
    emulator: EmulatorHandle, tmp_path: Path, stack_env: dict[str, str]
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    path = service_config(tmp_path, emulator, mode="service", llama_stack_url=nowhere)
    with start_service(path, stack_env) as orphan:
        assert httpx.get(f"{orphan.url}/liveness").status_code == 200
        ready = httpx.get(f"{orphan.url}/readiness")
        assert ready.status_code == 503
        response = httpx.post(f"{orphan.url}/v1/query", json={"query": "anyone?"}, timeout=60)
        assert response.status_code == 503
        assert response.json()["detail"]["response"] == "Llama Stack unavailable"


def test_service_mode_llama_stack_restart_gives_503_then_recovers(
    emulator: EmulatorHandle, tmp_path: Path, stack_env: dict[str, str]
) -> None:
    port = free_port()
    (tmp_path / "stack").mkdir()
    stack_config = service_config(tmp_path / "stack", emulator)
    path = service_config(
        tmp_path, emulator, mode="service", llama_stack_url=f"http://127.0.0.1:{port}"
    )

    def ask(service: ServiceHandle, text: str) -> httpx.Response:
        return httpx.post(f"{service.url}/v1/query", json={"query": text}, timeout=60)

    with start_service(path, stack_env) as service:
        with start_llama_stack(stack_config, stack_env, port=port):
            assert ask(service, "before").status_code == 200
        down = ask(service, "while the server is stopped")
        assert down.status_code == 503
        assert down.json()["detail"]["response"] == "Llama Stack unavailable"
        with start_llama_stack(stack_config, stack_env, port=port):
            answer = ask(service, "after restart")
            assert answer.status_code == 200, answer.text
            assert answer.json()["response"] == "You said: after restart"

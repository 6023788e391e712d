"""End-to-end: one model on several Azure OpenAI resources, library mode, real Llama Stack.

The emulator serves further resources at ``/RESOURCE/openai/v1``, each with its own limits
and counters (``RESOURCE/MODEL``); one Entra token is valid for all of them, as in a real
tenant. The service picks a resource per call and sends its base URL in the provider data.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
import yaml

from support.emulator import EmulatorHandle
from support.metrics import metric
from support.service import (
    ROOT,
    ServiceHandle,
    entra_identity_environment,
    free_port,
    service_config,
    stack_environment,
    start_llama_stack,
    start_service,
    start_service_mode,
)

pytestmark = pytest.mark.slow


def _resource(emulator: EmulatorHandle, name: str) -> str:
    return emulator.azure_base_url.replace("/openai/v1", f"/{name}/openai/v1")


def _start(
    emulator: EmulatorHandle,
    tmp_path_factory: pytest.TempPathFactory,
    strategy: str,
    base_urls: list[str],
) -> Iterator[ServiceHandle]:
    directory = tmp_path_factory.mktemp("deployments")
    endpoints = {"azure": {"strategy": strategy, "base_urls": base_urls}}
    path = service_config(directory, emulator, entra={"endpoints": endpoints})
    with start_service(path, stack_environment(emulator, directory / "state")) as handle:
        yield handle


@pytest.fixture(scope="module")
def priority(
    emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceHandle]:
    """Two resources, the default one first."""
    urls = [emulator.azure_base_url, _resource(emulator, "sweden")]
    yield from _start(emulator, tmp_path_factory, "priority", urls)


@pytest.fixture(scope="module")
def streaming(
    emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceHandle]:
    """Two resources, the default one first, for streams only.

    A service of its own: the all-throttled test leaves ``priority``'s resources cooling down
    for Azure's 45 s, and tests of one file run in any order.
    """
    urls = [emulator.azure_base_url, _resource(emulator, "denmark")]
    yield from _start(emulator, tmp_path_factory, "priority", urls)


@pytest.fixture(scope="module")
def round_robin(
    emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceHandle]:
    """A resource that refuses connections, then two that work, in turn."""
    refusing = f"https://127.0.0.1:{free_port()}/openai/v1"
    urls = [refusing, _resource(emulator, "east"), _resource(emulator, "west")]
    yield from _start(emulator, tmp_path_factory, "round_robin", urls)


@pytest.fixture(scope="module")
def service_mode(
    emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceHandle]:
    """Service mode: the entrypoint enriches the server's run config from the same section."""
    directory = tmp_path_factory.mktemp("deployments-service-mode")
    urls = [emulator.azure_base_url, _resource(emulator, "norway")]
    entra = {"endpoints": {"azure": {"strategy": "priority", "base_urls": urls}}}
    with start_service_mode(emulator, directory, entra=entra) as handle:
        yield handle


@pytest.fixture(scope="module")
def provider_server(
    emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceHandle]:
    """A Llama Stack server whose remote::azure-entra provider lists two resources itself."""
    directory = tmp_path_factory.mktemp("deployments-provider")
    run_config = yaml.safe_load((ROOT / "run-configs" / "azure-entra.yaml").read_text())
    (azure,) = run_config["providers"]["inference"]
    urls = [emulator.azure_base_url, _resource(emulator, "finland")]
    azure["config"]["endpoints"] = {"strategy": "priority", "base_urls": urls}
    path = directory / "run.yaml"
    path.write_text(yaml.safe_dump(run_config))
    env = stack_environment(emulator, directory / "state") | entra_identity_environment(emulator)
    with start_llama_stack(None, env, run_config=path, log_dir=directory) as server:
        yield server


def _query(service: ServiceHandle, text: str) -> httpx.Response:
    body = {"query": text, "generate_topic_summary": False}
    return httpx.post(f"{service.url}/v1/query", json=body, timeout=60)


def _ok(emulator: EmulatorHandle, deployment: str) -> int:
    return int(emulator.azure_calls(deployment)["ok"])


def test_priority_spills_over_on_429_and_returns_after_azures_wait(
    priority: ServiceHandle, fresh_emulator: EmulatorHandle
) -> None:
    emulator, model = fresh_emulator, fresh_emulator.model
    sweden = f"sweden/{model}"
    assert _query(priority, "warm").status_code == 200
    emulator.reset()
    emulator.throttle_next(1, retry_after=2, model=model)  # the first resource only
    assert _query(priority, "spill over").status_code == 200
    assert emulator.azure_calls(model)["throttled"] == 1
    assert _ok(emulator, sweden) == 1
    assert _query(priority, "while it cools down").status_code == 200
    assert _ok(emulator, model) == 0  # no call during Azure's wait
    assert _ok(emulator, sweden) == 2
    first_state, sweden_state = httpx.get(f"{priority.url}/v1/info").json()["azure_resources"][
        "azure"
    ]
    assert 0 < first_state["cooling_down_seconds"] <= 2
    assert (first_state["throttled"], sweden_state["calls"]) == (1, 2)
    page = httpx.get(f"{priority.url}/", timeout=10).text
    assert "cooling down" in page
    assert _resource(emulator, "sweden") in page
    time.sleep(2.1)
    assert _query(priority, "back to the first").status_code == 200
    assert _ok(emulator, model) == 1
    assert emulator.counters()["token_requests"] == 0  # one token serves every resource
    failovers = "llama_entra_azure_deployment_failovers_total"
    first, second = emulator.azure_base_url, _resource(emulator, "sweden")
    assert metric(priority.url, failovers, provider="azure", resource=first) == 1
    calls = metric(priority.url, "llama_entra_azure_deployment_calls_total", resource=second)
    assert calls >= 2
    listed = httpx.get(f"{priority.url}/v1/models", timeout=10).json()["models"]
    assert [m["identifier"] for m in listed if "resource" in m["identifier"]] == []


def test_every_resource_throttled_is_one_429_with_the_soonest_wait(
    priority: ServiceHandle, fresh_emulator: EmulatorHandle
) -> None:
    emulator, model = fresh_emulator, fresh_emulator.model
    emulator.throttle_next(2, retry_after=45)  # both resources' next call
    started = time.monotonic()
    response = _query(priority, "all throttled")
    assert response.status_code == 429, response.text
    assert response.headers["retry-after"] == "45"
    assert time.monotonic() - started < 5  # over the 10 s budget: not slept through
    assert emulator.azure_calls(model)["throttled"] == 1
    assert emulator.azure_calls(f"sweden/{model}")["throttled"] == 1
    readiness = httpx.get(f"{priority.url}/readiness", timeout=10)
    assert readiness.status_code == 200  # ready: the calls wait or get 429 with the wait
    body = readiness.json()
    assert body["overall_status"] == "unhealthy"
    assert {p["provider_id"] for p in body["providers"]} == {"azure", "azure-resource-2"}
    assert all(p["status"] == "cooling_down" for p in body["providers"])
    assert any(_resource(emulator, "sweden") in p["message"] for p in body["providers"])
    emulator.reset()


def test_round_robin_skips_a_refusing_resource_and_spreads_the_rest(
    round_robin: ServiceHandle, fresh_emulator: EmulatorHandle
) -> None:
    emulator, model = fresh_emulator, fresh_emulator.model
    for turn in range(6):
        response = _query(round_robin, f"turn {turn}")
        assert response.status_code == 200, response.text
    east, west = _ok(emulator, f"east/{model}"), _ok(emulator, f"west/{model}")
    assert east + west == 6
    assert abs(east - west) <= 1
    assert _ok(emulator, model) == 0
    # The Responses API is spread too (Llama Stack's implementation calls the copy's model).
    body = {"model": f"azure/{model}", "input": "through Responses"}
    answered = httpx.post(f"{round_robin.url}/v1/responses", json=body, timeout=60)
    assert answered.status_code == 200, answered.text
    assert _ok(emulator, f"east/{model}") + _ok(emulator, f"west/{model}") == 7


def test_service_mode_spills_over_through_the_servers_resource_providers(
    service_mode: ServiceHandle, fresh_emulator: EmulatorHandle
) -> None:
    emulator, model = fresh_emulator, fresh_emulator.model
    assert _query(service_mode, "warm").status_code == 200
    emulator.reset()
    # Over 120 s: the server's remote::azure adapter (the OpenAI SDK, unconfigurable there)
    # answers the 429 at once instead of sleeping Azure's wait, so the service moves the call.
    emulator.throttle_next(1, retry_after=121, model=model)
    assert _query(service_mode, "spill over").status_code == 200
    assert emulator.azure_calls(model)["throttled"] == 1
    assert _ok(emulator, f"norway/{model}") == 1
    streamed = httpx.post(
        f"{service_mode.url}/v1/chat/completions",
        json={
            "model": f"azure/{model}",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
        },
        timeout=60,
    )
    assert streamed.status_code == 200
    assert _ok(emulator, f"norway/{model}") == 2  # the first resource still cools down
    emulator.reset()


def test_the_provider_spills_over_on_its_own_list(
    provider_server: ServiceHandle, fresh_emulator: EmulatorHandle
) -> None:
    emulator, model = fresh_emulator, fresh_emulator.model
    client = openai.OpenAI(base_url=f"{provider_server.url}/v1", api_key="none", max_retries=0)
    messages: list[Any] = [{"role": "user", "content": "through the provider"}]
    emulator.throttle_next(1, retry_after=60, model=model)
    answer = client.chat.completions.create(model=f"azure/{model}", messages=messages)
    assert answer.choices[0].message.content == "You said: through the provider"
    assert emulator.azure_calls(model)["throttled"] == 1
    assert _ok(emulator, f"finland/{model}") == 1
    stream = client.chat.completions.create(model=f"azure/{model}", messages=messages, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert _ok(emulator, model) == 0  # still cooling down: Azure asked for 60 s
    assert _ok(emulator, f"finland/{model}") == 2
    emulator.reset()


def _broken_stream(service: ServiceHandle, emulator: EmulatorHandle) -> str:
    """A streamed query whose Azure stream drops after two chunks: what the caller received."""
    emulator.break_streams_after(2)
    body = {"query": "a long streamed answer", "generate_topic_summary": False}
    try:
        with httpx.stream(
            "POST", f"{service.url}/v1/streaming_query", json=body, timeout=60
        ) as reply:
            assert reply.status_code == 200
            return "".join(reply.iter_text())
    finally:
        emulator.reset()


def test_no_failover_once_a_stream_has_sent_its_first_chunk(
    streaming: ServiceHandle, fresh_emulator: EmulatorHandle
) -> None:
    emulator, model = fresh_emulator, fresh_emulator.model
    events = [
        json.loads(line[5:])
        for line in _broken_stream(streaming, emulator).splitlines()
        if line.startswith("data:")
    ]
    assert [e["event"] for e in events] == ["start", "token", "token", "error"]
    assert events[-1]["data"]["status_code"] == 502
    calls = emulator.azure_calls(f"denmark/{model}")
    assert sum(calls.values()) == 0  # never re-sent: the first resource may have billed it


def test_service_mode_no_failover_once_a_stream_has_sent_its_first_chunk(
    service_mode: ServiceHandle, fresh_emulator: EmulatorHandle
) -> None:
    emulator, model = fresh_emulator, fresh_emulator.model
    received = _broken_stream(service_mode, emulator)
    assert '"event": "token"' in received
    assert '"event": "error"' in received
    assert sum(emulator.azure_calls(f"norway/{model}").values()) == 0


def test_emulator_limits_a_named_resource_on_its_own(fresh_emulator: EmulatorHandle) -> None:
    """A named resource's quota is its own: the default resource is not limited by it."""
    emulator, model = fresh_emulator, fresh_emulator.model
    view = emulator.set_limits(f"oslo/{model}", rpm=1)
    assert view["rpm"] == 1
    token = emulator.access_token()
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(
        verify=str(emulator.ca_path), headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        oslo = f"{_resource(emulator, 'oslo')}/chat/completions"
        assert client.post(oslo, json=body).status_code == 200
        refused = client.post(oslo, json=body)
        assert refused.status_code == 429
        assert refused.headers["x-ratelimit-remaining-requests"] == "0"
        assert client.post(f"{emulator.azure_base_url}/chat/completions", json=body).is_success
    assert emulator.azure_calls(f"oslo/{model}")["throttled"] == 1
    assert emulator.limits()[f"oslo/{model}"]["window_requests"] == 1
    emulator.reset()

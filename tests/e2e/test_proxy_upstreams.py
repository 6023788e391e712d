"""End-to-end: the proxy in front of several Azure OpenAI resources (``proxy.upstreams``).

The emulator serves further resources at ``/RESOURCE/openai/v1``, each with its own limits and
counters (``RESOURCE/MODEL``), and one Entra token is valid for all of them. Real openai and
httpx clients talk to the proxy under real uvicorn.
"""

from __future__ import annotations

import time

import httpx
import openai

from support.emulator import EmulatorHandle
from support.metrics import metric
from support.proxy import ProxyFactory
from support.service import free_port


def _resource(emulator: EmulatorHandle, name: str) -> str:
    return emulator.azure_base_url.replace("/openai/v1", f"/{name}/openai/v1")


def _ok(emulator: EmulatorHandle, deployment: str) -> int:
    return int(emulator.azure_calls(deployment)["ok"])


def _chat(url: str, model: str, text: str) -> str | None:
    client = openai.OpenAI(base_url=url, api_key="caller-key", max_retries=0)
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}]
    )
    return reply.choices[0].message.content


def test_priority_spills_over_on_429_and_returns_after_azures_wait(
    proxy: ProxyFactory, fresh_emulator: EmulatorHandle
) -> None:
    emulator, model = fresh_emulator, fresh_emulator.model
    first, sweden = emulator.azure_base_url, _resource(emulator, "sweden")
    with proxy(upstreams={"strategy": "priority", "base_urls": [first, sweden]}) as url:
        emulator.throttle_next(1, retry_after=2, model=model)  # the first resource only
        assert _chat(url, model, "spill over") == "You said: spill over"
        assert emulator.azure_calls(model)["throttled"] == 1
        assert _ok(emulator, f"sweden/{model}") == 1
        assert _chat(url, model, "while it cools down") == "You said: while it cools down"
        assert _ok(emulator, model) == 0  # no call during Azure's wait
        ready = httpx.get(f"{url}/readyz", timeout=10).json()
        assert ready["ready"] is True
        cooling = {u["url"]: u["cooling_down_seconds"] for u in ready["upstreams"]}
        assert 0 < cooling[first] <= 2
        assert cooling[sweden] == 0
        time.sleep(2.1)
        assert _chat(url, model, "back") == "You said: back"
        assert _ok(emulator, model) == 1
        failovers = "llama_entra_azure_deployment_failovers_total"
        assert metric(url, failovers, provider="proxy", resource=first) == 1
        calls = metric(url, "llama_entra_azure_deployment_calls_total", resource=sweden)
        assert calls == 2
        assert metric(url, "llama_entra_azure_deployment_throttled_total", resource=first) == 1
    assert emulator.counters()["token_requests"] == 1  # one token serves every resource


def test_every_upstream_throttled_is_one_429_with_the_soonest_wait(
    proxy: ProxyFactory, fresh_emulator: EmulatorHandle
) -> None:
    emulator, model = fresh_emulator, fresh_emulator.model
    urls = [emulator.azure_base_url, _resource(emulator, "sweden")]
    with proxy(upstreams={"base_urls": urls}) as url:
        emulator.throttle_next(1, retry_after=30, model=model)
        body = {"model": model, "messages": [{"role": "user", "content": "first"}]}
        assert httpx.post(f"{url}/chat/completions", json=body, timeout=30).status_code == 200
        emulator.throttle_next(1, retry_after=45, model=f"sweden/{model}")
        started = time.monotonic()
        throttled = httpx.post(f"{url}/chat/completions", json=body, timeout=30)
        assert time.monotonic() - started < 5  # answered at once, nothing slept
    assert throttled.status_code == 429, throttled.text
    assert int(throttled.headers["retry-after"]) in (29, 30)  # the first resource's, sooner
    error = throttled.json()["error"]
    assert error["code"] == "429"
    assert "Please retry after" in error["message"]
    assert emulator.azure_calls(model)["throttled"] == 1  # no call while it cooled down
    assert emulator.azure_calls(f"sweden/{model}")["throttled"] == 1


def test_round_robin_skips_a_refusing_upstream_and_spreads_the_rest(
    proxy: ProxyFactory, fresh_emulator: EmulatorHandle
) -> None:
    emulator, model = fresh_emulator, fresh_emulator.model
    refusing = f"https://127.0.0.1:{free_port()}/openai/v1"
    urls = [refusing, _resource(emulator, "east"), _resource(emulator, "west")]
    with proxy(upstream=None, upstreams={"strategy": "round_robin", "base_urls": urls}) as url:
        for turn in range(6):
            assert _chat(url, model, f"turn {turn}") == f"You said: turn {turn}"
        unavailable = metric(
            url, "llama_entra_azure_deployment_unavailable_total", resource=refusing
        )
    east, west = _ok(emulator, f"east/{model}"), _ok(emulator, f"west/{model}")
    assert east + west == 6, emulator.azure_calls()
    assert abs(east - west) <= 1
    assert unavailable == 1  # then it cooled down and got no further call


def test_a_stream_broken_after_its_first_chunk_is_not_sent_elsewhere(
    proxy: ProxyFactory, fresh_emulator: EmulatorHandle
) -> None:
    emulator, model = fresh_emulator, fresh_emulator.model
    urls = [emulator.azure_base_url, _resource(emulator, "sweden")]
    emulator.break_streams_after(2)
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "a long streamed answer"}],
        "stream": True,
    }
    received = b""
    with (
        proxy(upstreams={"base_urls": urls}) as url,
        httpx.stream("POST", f"{url}/chat/completions", json=body, timeout=30) as reply,
    ):
        assert reply.status_code == 200
        try:
            for chunk in reply.iter_raw():
                received += chunk
        except httpx.HTTPError:
            pass  # the relay ends early, as the upstream's stream did
    emulator.reset()
    assert b'"content":"You"' in received
    assert b"[DONE]" not in received
    assert _ok(emulator, f"sweden/{model}") == 0
    assert emulator.azure_calls(f"sweden/{model}")["throttled"] == 0


def test_a_body_too_large_to_replay_is_not_moved(
    proxy: ProxyFactory, fresh_emulator: EmulatorHandle
) -> None:
    emulator, model = fresh_emulator, fresh_emulator.model
    urls = [emulator.azure_base_url, _resource(emulator, "sweden")]
    with proxy(upstreams={"base_urls": urls}, replay_limit_bytes=16) as url:
        emulator.throttle_next(1, retry_after=20, model=model)
        body = {"model": model, "messages": [{"role": "user", "content": "streamed up"}]}
        throttled = httpx.post(f"{url}/chat/completions", json=body, timeout=30)
        assert throttled.status_code == 429
        assert throttled.headers["retry-after"] == "20"  # Azure's own wait and answer
        assert throttled.json()["error"]["code"] == "429"
        assert _chat(url, model, "next one") == "You said: next one"  # the first cools down
    assert emulator.azure_calls(f"sweden/{model}")["ok"] == 1
    assert emulator.azure_calls(model)["throttled"] == 1

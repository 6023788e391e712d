"""End-to-end: the sidecar proxy under real uvicorn in front of the emulator.

Real azure-identity gets tokens from the emulator over HTTPS; real clients (openai, httpx) talk
to the proxy; the emulator's counters and recorded headers prove what reached "Azure".
"""

from __future__ import annotations

import gzip
import json
import logging
import time

import httpx
import openai
import pytest

from support.emulator import EmulatorHandle
from support.metrics import metric
from support.proxy import ProxyFactory


def _openai(url: str, api_key: str = "caller-key") -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key=api_key, max_retries=0)


def test_proxy_openai_sdk_chat_stream_and_models(
    proxy: ProxyFactory, fresh_emulator: EmulatorHandle
) -> None:
    with proxy() as url:
        client = _openai(url)
        reply = client.chat.completions.create(
            model=fresh_emulator.model, messages=[{"role": "user", "content": "via proxy"}]
        )
        assert reply.choices[0].message.content == "You said: via proxy"
        stream = client.chat.completions.create(
            model=fresh_emulator.model,
            messages=[{"role": "user", "content": "streamed proxy"}],
            stream=True,
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == "You said: streamed proxy"
        assert [m.id for m in client.models.list()] == [fresh_emulator.model]
        response = client.responses.create(model=fresh_emulator.model, input="responses proxy")
        assert response.output_text == "You said: responses proxy"
        vectors = client.embeddings.create(model=fresh_emulator.embedding_model, input="proxy")
        assert len(vectors.data[0].embedding) == fresh_emulator.embedding_dimension
    assert fresh_emulator.counters()["token_requests"] == 1


def test_proxy_callers_credentials_never_reach_upstream(
    proxy: ProxyFactory, fresh_emulator: EmulatorHandle
) -> None:
    with proxy() as url:
        response = httpx.get(
            f"{url}/models",
            headers={"api-key": "caller-api-key", "Authorization": "Bearer caller-bearer"},
        )
    assert response.status_code == 200
    sent = fresh_emulator.last_request_headers()[-1]
    assert "api-key" not in sent
    assert "caller" not in json.dumps(sent)
    assert sent["authorization"].startswith("Bearer ey")


def test_proxy_streams_chunks_as_the_upstream_produces_them(
    proxy: ProxyFactory, fresh_emulator: EmulatorHandle
) -> None:
    fresh_emulator.set_stream_delay(0.2)
    body = {
        "model": fresh_emulator.model,
        "messages": [{"role": "user", "content": "a b c d"}],
        "stream": True,
    }
    arrivals: list[float] = []
    with proxy() as url, httpx.stream("POST", f"{url}/chat/completions", json=body) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: {"):
                arrivals.append(time.monotonic())
    assert len(arrivals) >= 7
    # Six words at 0.2 s each: buffered, they would all arrive together at the end.
    assert arrivals[-1] - arrivals[1] > 0.8


def test_proxy_caller_hanging_up_mid_stream_ends_the_relay_at_once(
    proxy: ProxyFactory, fresh_emulator: EmulatorHandle
) -> None:
    fresh_emulator.set_stream_delay(0.5)
    words = " ".join(f"w{n}" for n in range(30))  # about 16 s to stream in full
    body = {
        "model": fresh_emulator.model,
        "messages": [{"role": "user", "content": words}],
        "stream": True,
    }
    with proxy() as url:
        with httpx.stream("POST", f"{url}/chat/completions", json=body) as response:
            assert response.status_code == 200
            next(response.iter_raw())
        hung_up = time.monotonic()
        deadline = hung_up + 5
        while metric(url, "llama_entra_proxy_requests_total", status="200") < 1:
            assert time.monotonic() < deadline, "the relay outlived its caller"
            time.sleep(0.05)
        relayed = metric(url, "llama_entra_proxy_bytes_total", direction="downstream")
        assert httpx.get(f"{url}/healthz").status_code == 200
    assert relayed < 1000  # a few chunks, not the whole answer


def test_proxy_gzip_response_passes_through_compressed(
    proxy: ProxyFactory, fresh_emulator: EmulatorHandle
) -> None:
    with (
        proxy() as url,
        httpx.stream("GET", f"{url}/models", headers={"Accept-Encoding": "gzip"}) as response,
    ):
        raw = b"".join(response.iter_raw())
    assert response.headers["content-encoding"] == "gzip"
    assert raw[:2] == b"\x1f\x8b"
    assert json.loads(gzip.decompress(raw))["data"][0]["id"] == fresh_emulator.model


def test_proxy_large_request_body_streams_up(
    proxy: ProxyFactory, fresh_emulator: EmulatorHandle
) -> None:
    words = " ".join(["word"] * 1_000_000)  # ~5 MB, above the replay limit
    body = {"model": fresh_emulator.model, "messages": [{"role": "user", "content": words}]}
    with proxy(replay_limit_bytes=1024) as url:
        response = httpx.post(f"{url}/chat/completions", json=body, timeout=60)
        sent = metric(url, "llama_entra_proxy_bytes_total", direction="upstream")
        relayed = metric(url, "llama_entra_proxy_bytes_total", direction="downstream")
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["prompt_tokens"] == 1_000_000
    assert sent == len(response.request.content)
    assert relayed == response.num_bytes_downloaded  # as sent: gzip stays gzip


def test_proxy_upstream_401_refreshes_once_and_succeeds(
    proxy: ProxyFactory, fresh_emulator: EmulatorHandle
) -> None:
    with proxy() as url:
        client = _openai(url)
        assert client.models.list().data
        fresh_emulator.revoke_all_tokens()
        reply = client.chat.completions.create(
            model=fresh_emulator.model, messages=[{"role": "user", "content": "after revoke"}]
        )
        assert metric(url, "llama_entra_azure_unauthorized_retries_total") == 1
        assert metric(url, "llama_entra_entra_token_fetches_total", outcome="success") == 2
        assert metric(url, "llama_entra_proxy_requests_total", status="200") == 2
    assert reply.choices[0].message.content == "You said: after revoke"
    counters = fresh_emulator.counters()
    assert (counters["token_requests"], counters["unauthorized"]) == (2, 1)


def test_proxy_starts_with_entra_down_then_503_then_recovers(
    proxy: ProxyFactory, fresh_emulator: EmulatorHandle
) -> None:
    fresh_emulator.set_entra_down(True)
    with proxy() as url:
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert fresh_emulator.counters()["token_requests"] == 0  # nothing at start-up
        down = httpx.get(f"{url}/models")
        assert down.status_code == 503
        assert down.json()["detail"]["response"] == "Entra ID token unavailable"
        assert httpx.get(f"{url}/readyz").status_code == 503
        fresh_emulator.set_entra_down(False)
        deadline = time.monotonic() + 40  # the token manager retries with backoff
        while (answer := httpx.get(f"{url}/models")).status_code != 200:
            assert answer.status_code == 503
            assert time.monotonic() < deadline, "no recovery within 40 s"
            time.sleep(0.5)
        ready = httpx.get(f"{url}/readyz").json()
        assert ready["ready"] is True and ready["expires_in_seconds"] > 0


def test_proxy_classic_azure_deployment_route(
    proxy: ProxyFactory, fresh_emulator: EmulatorHandle
) -> None:
    with proxy() as url:
        client = openai.AzureOpenAI(
            azure_endpoint=url, api_key="caller-key", api_version="2024-10-21", max_retries=0
        )
        reply = client.chat.completions.create(
            model=fresh_emulator.model, messages=[{"role": "user", "content": "classic"}]
        )
    assert reply.choices[0].message.content == "You said: classic"


def test_proxy_logs_no_token(
    proxy: ProxyFactory, fresh_emulator: EmulatorHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with proxy() as url:
        assert httpx.get(f"{url}/models").status_code == 200
        fresh_emulator.revoke_all_tokens()
        assert httpx.get(f"{url}/models").status_code == 200
    token = fresh_emulator.last_request_headers()[-1]["authorization"].removeprefix("Bearer ")
    assert token not in caplog.text
    assert fresh_emulator.client_secret not in caplog.text
    assert "retrying once with a fresh Entra ID token" in caplog.text


def test_proxy_passes_azures_429_and_filter_answers_through_unchanged_without_retrying(
    proxy: ProxyFactory, fresh_emulator: EmulatorHandle
) -> None:
    """The proxy is transparent: Azure's status, body and headers reach the caller as sent,
    and the caller's own SDK applies its retry policy (the proxy adds no call)."""
    model = fresh_emulator.model
    messages = [{"role": "user", "content": "throttled"}]
    with proxy() as url:
        http = httpx.Client(base_url=url, headers={"Authorization": "Bearer caller"}, timeout=30)
        assert http.get("/models").status_code == 200  # warm the token
        fresh_emulator.reset()
        fresh_emulator.throttle_next(1, retry_after=42.5)
        throttled = http.post("/chat/completions", json={"model": model, "messages": messages})
        blocked = http.post(
            "/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": "!filter-prompt"}]},
        )
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == "43"
    assert throttled.headers["retry-after-ms"] == "42500"
    assert "x-ratelimit-remaining-tokens" in throttled.headers
    assert throttled.json()["error"]["code"] == "429"
    assert "Please retry after 43 seconds" in throttled.json()["error"]["message"]
    assert blocked.status_code == 400
    inner = blocked.json()["error"]["innererror"]
    assert inner["code"] == "ResponsibleAIPolicyViolation"
    calls = fresh_emulator.azure_calls(model)
    assert (calls["throttled"], calls["content_filter"]) == (1, 1)
    assert fresh_emulator.counters()["token_requests"] == 0

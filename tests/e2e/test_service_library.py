"""End-to-end: the service in library mode (Llama Stack in-process) against the emulator.

Real ``llama-entra serve`` subprocesses, real azure-identity over HTTPS to the emulator, real
clients (httpx, openai). The module-scoped ``service`` is shared; tests that need a cold token
cache or a broken identity start their own.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llama_entra.backends import PROVIDER_DATA_HEADERS
from support.emulator import EmulatorHandle
from support.metrics import metric
from support.service import ServiceHandle, service_config, stack_environment, start_service

pytestmark = pytest.mark.slow


def _cold_service(emulator: EmulatorHandle, directory: Path, **changes: Any) -> Any:
    path = service_config(directory, emulator, **changes)
    return start_service(path, stack_environment(emulator, directory / "state"))


def _query(service: ServiceHandle, text: str, **fields: Any) -> httpx.Response:
    # No topic summary unless asked: a background Azure call would land in the tests' counts.
    body = {"query": text, "generate_topic_summary": False, **fields}
    return httpx.post(f"{service.url}/v1/query", json=body, timeout=30)


def _sse_events(response: httpx.Response) -> list[dict[str, Any]]:
    return [
        json.loads(line[len("data: ") :])
        for line in response.text.splitlines()
        if line.startswith("data: ")
    ]


def _bearer_sent_upstream(emulator: EmulatorHandle) -> str:
    return emulator.last_request_headers()[-1]["authorization"].removeprefix("Bearer ")


def test_service_cold_start_makes_no_token_request_and_50_queries_share_one(
    fresh_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    with _cold_service(fresh_emulator, tmp_path) as cold:
        assert httpx.get(f"{cold.url}/readiness").status_code == 200
        models = httpx.get(f"{cold.url}/v1/models").json()["data"]
        assert [m["id"] for m in models] == [f"azure/{fresh_emulator.model}"]
        assert fresh_emulator.counters()["token_requests"] == 0

        async def ask_all() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=cold.url, timeout=60) as client:
                return await asyncio.gather(
                    *(client.post("/v1/query", json={"query": f"q {i}"}) for i in range(50))
                )

        answers = asyncio.run(ask_all())
        failed = [a.text for a in answers if a.status_code != 200]
        assert not failed, failed[:3]
        assert {a.json()["response"] for a in answers} == {f"You said: q {i}" for i in range(50)}
        assert fresh_emulator.counters()["token_requests"] == 1


def test_query_answers_and_continues_the_conversation(
    service: ServiceHandle, fresh_emulator: EmulatorHandle
) -> None:
    first = _query(service, "hello there")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["response"] == "You said: hello there"
    assert body["model"] == f"azure/{fresh_emulator.model}"
    assert body["input_tokens"] > 0 and body["output_tokens"] == 4

    second = _query(service, "and again", conversation_id=body["conversation_id"])
    assert second.status_code == 200, second.text
    assert second.json()["conversation_id"] == body["conversation_id"]
    # History reached Azure: the prompt counted the earlier turn too.
    assert second.json()["input_tokens"] > body["input_tokens"]


def test_query_unknown_conversation_is_404(service: ServiceHandle) -> None:
    response = _query(service, "hi", conversation_id="conv_" + "0" * 48)
    assert response.status_code == 404
    assert response.json()["detail"]["response"] == "Conversation not found"


def test_query_unknown_model_is_404_and_bad_body_is_422(service: ServiceHandle) -> None:
    unknown = _query(service, "hi", provider="azure", model="no-such-model")
    assert unknown.status_code == 404
    assert "no-such-model" in unknown.json()["detail"]["cause"]
    bad = httpx.post(f"{service.url}/v1/query", json={"question": "hi"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "query"]  # FastAPI's native body
    not_json = httpx.post(
        f"{service.url}/v1/query", content=b"\xff\xfe", headers={"content-type": "text/plain"}
    )
    assert not_json.status_code == 422


def test_oversized_body_is_413(service: ServiceHandle) -> None:
    response = httpx.post(f"{service.url}/v1/query", json={"query": "x" * 2_000_000})
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]["cause"]


def test_request_id_is_echoed_or_made_and_found_in_the_access_log(
    service: ServiceHandle,
) -> None:
    mine = httpx.get(f"{service.url}/v1/models", headers={"X-Request-ID": "trace-4711"})
    unsafe = httpx.get(f"{service.url}/v1/models", headers={"X-Request-ID": "bad id! forged"})
    made = unsafe.headers["x-request-id"]
    assert mine.headers["x-request-id"] == "trace-4711"
    assert made != "bad id! forged" and len(made) == 32
    deadline = time.monotonic() + 5  # the access log is written after the response
    while "request_id=trace-4711" not in service.logs() or made not in service.logs():
        assert time.monotonic() < deadline, service.logs()[-2000:]
        time.sleep(0.05)
    assert "forged" not in service.logs()


def test_streaming_query_relays_tokens_as_they_arrive(
    service: ServiceHandle, fresh_emulator: EmulatorHandle
) -> None:
    fresh_emulator.set_stream_delay(0.15)
    arrivals: list[float] = []
    events: list[dict[str, Any]] = []
    with httpx.stream(
        "POST",
        f"{service.url}/v1/streaming_query",
        json={"query": "one two three four"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
                arrivals.append(time.monotonic())
    kinds = [event["event"] for event in events]
    assert kinds[0] == "start" and kinds[-1] == "end"
    tokens = [event["data"]["token"] for event in events if event["event"] == "token"]
    assert "".join(tokens) == "You said: one two three four"
    assert len(tokens) == 6
    # Relayed, not buffered: the first token came well before the last.
    token_times = [t for t, e in zip(arrivals, events, strict=True) if e["event"] == "token"]
    assert token_times[-1] - token_times[0] > 0.5
    assert events[-1]["data"]["output_tokens"] == 6
    assert events[0]["data"]["conversation_id"].startswith("conv_")


def test_openai_sdk_chat_completions_and_responses(
    service: ServiceHandle, fresh_emulator: EmulatorHandle
) -> None:
    client = openai.OpenAI(base_url=f"{service.url}/v1", api_key="unused", max_retries=0)
    model = f"azure/{fresh_emulator.model}"
    completion = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "plain call"}]
    )
    assert completion.choices[0].message.content == "You said: plain call"
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "streamed call"}], stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "You said: streamed call"
    response = client.responses.create(model=model, input="responses call")
    assert response.output_text == "You said: responses call"
    streamed = client.responses.create(model=model, input="streamed responses", stream=True)
    deltas = [event.delta for event in streamed if event.type == "response.output_text.delta"]
    assert "".join(deltas) == "You said: streamed responses"


@pytest.mark.parametrize("header", PROVIDER_DATA_HEADERS)
@pytest.mark.parametrize("route", ["/v1/query", "/v1/chat/completions"])
def test_callers_provider_data_never_reaches_azure(
    service: ServiceHandle, fresh_emulator: EmulatorHandle, header: str, route: str
) -> None:
    # Either backend's header name, on both routes: the service builds its own per call.
    forged = json.dumps({"azure_api_key": "attacker-key", "azure_api_base": "https://evil.test/v1"})
    body: dict[str, Any] = {"query": "redirect me"}
    if route == "/v1/chat/completions":
        body = {"model": fresh_emulator.model, "messages": [{"role": "user", "content": "hi"}]}
    response = httpx.post(
        f"{service.url}{route}",
        json=body,
        headers={header: forged, "api-key": "attacker-key"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    sent = fresh_emulator.last_request_headers()[-1]
    assert "attacker-key" not in json.dumps(sent)
    assert sent["authorization"].startswith("Bearer ey")  # an Entra token the emulator issued


def test_revoked_token_is_refreshed_once_and_the_call_succeeds(
    service: ServiceHandle, fresh_emulator: EmulatorHandle
) -> None:
    assert _query(service, "warm up").status_code == 200
    before = fresh_emulator.counters()["token_requests"]
    retries = metric(service.url, "llama_entra_azure_unauthorized_retries_total")
    fetched = metric(service.url, "llama_entra_entra_token_fetches_total", outcome="success")
    fresh_emulator.revoke_all_tokens()
    response = _query(service, "after revocation")
    assert response.status_code == 200, response.text
    assert response.json()["response"] == "You said: after revocation"
    assert fresh_emulator.counters()["token_requests"] == before + 1
    assert fresh_emulator.counters()["unauthorized"] == 1
    assert metric(service.url, "llama_entra_azure_unauthorized_retries_total") == retries + 1
    success = metric(service.url, "llama_entra_entra_token_fetches_total", outcome="success")
    assert success == fetched + 1
    assert metric(service.url, "llama_entra_entra_token_fetch_duration_seconds_count") >= success


def test_revoked_token_streaming_is_refreshed_before_the_first_chunk(
    service: ServiceHandle, fresh_emulator: EmulatorHandle
) -> None:
    assert _query(service, "warm up").status_code == 200
    fresh_emulator.revoke_all_tokens()
    response = httpx.post(
        f"{service.url}/v1/streaming_query", json={"query": "stream after revoke"}, timeout=30
    )
    assert response.status_code == 200
    tokens = [e["data"]["token"] for e in _sse_events(response) if e["event"] == "token"]
    assert "".join(tokens) == "You said: stream after revoke"
    assert fresh_emulator.counters()["token_requests"] == 1


def test_entra_down_gives_503_naming_entra_then_recovers_without_restart(
    fresh_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    fresh_emulator.set_entra_down(True)
    with _cold_service(fresh_emulator, tmp_path) as cold:
        down = _query(cold, "while down")
        assert down.status_code == 503
        detail = down.json()["detail"]
        assert "Entra ID" in detail["response"]
        assert detail["cause"]
        assert metric(cold.url, "llama_entra_entra_token_fetches_total", outcome="unavailable") >= 1
        fresh_emulator.set_entra_down(False)
        deadline = time.monotonic() + 40  # the manager retries with backoff (1 s, 2 s, ...)
        while (answer := _query(cold, "after recovery")).status_code != 200:
            assert answer.status_code == 503
            assert time.monotonic() < deadline, "no recovery within 40 s"
            time.sleep(0.5)
        assert answer.json()["response"] == "You said: after recovery"


def test_wrong_secret_gives_503_with_entra_cause_and_no_secret(
    fresh_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    wrong = "definitely-wrong-secret-123"
    with _cold_service(fresh_emulator, tmp_path, entra={"client_secret": wrong}) as cold:
        response = _query(cold, "hi")
        assert response.status_code == 503
        assert "AADSTS7000215" in response.json()["detail"]["cause"]
        assert metric(cold.url, "llama_entra_entra_token_fetches_total", outcome="rejected") == 1
        assert wrong not in response.text
        assert wrong not in cold.logs()


def test_info_metrics_and_logs_carry_no_secret(
    service: ServiceHandle, fresh_emulator: EmulatorHandle
) -> None:
    assert _query(service, "for the logs").status_code == 200
    token = _bearer_sent_upstream(fresh_emulator)
    info = httpx.get(f"{service.url}/v1/info").json()
    assert info["mode"] == "library"
    assert info["authentication"] == "noop"
    assert info["entra_id"]["has_token"] is True
    assert fresh_emulator.client_id in info["entra_id"]["identity"]
    metrics = httpx.get(f"{service.url}/metrics").text
    assert 'llama_entra_requests_total{method="POST",route="/v1/query",status="200"}' in metrics
    assert "llama_entra_entra_token_present 1.0" in metrics
    for text in (json.dumps(info), metrics, service.logs()):
        assert token not in text
        assert fresh_emulator.client_secret not in text
    assert "principal=anonymous" in service.logs()


def test_service_with_api_key_auth_guards_routes_but_not_probes(
    fresh_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    auth = {
        "authentication": {
            "module": "api_key",
            "api_key": {"keys": {"team-a": "team-a-key", "viewer": "viewer-key"}},
            "rules": [
                {"role": "team-a", "actions": ["*"]},
                {"role": "viewer", "actions": ["models", "info"]},
            ],
            "metrics_require_auth": True,
        }
    }
    with _cold_service(fresh_emulator, tmp_path, extra=auth) as cold:
        assert httpx.get(f"{cold.url}/liveness").status_code == 200
        assert httpx.get(f"{cold.url}/readiness").status_code == 200
        assert _query(cold, "no key").status_code == 401
        assert httpx.get(f"{cold.url}/metrics").status_code == 401
        team = {"Authorization": "Bearer team-a-key"}
        viewer = {"Authorization": "Bearer viewer-key"}
        answer = httpx.post(
            f"{cold.url}/v1/query", json={"query": "with key"}, headers=team, timeout=30
        )
        assert answer.status_code == 200, answer.text
        forbidden = httpx.post(f"{cold.url}/v1/query", json={"query": "x"}, headers=viewer)
        assert forbidden.status_code == 403
        info = httpx.get(f"{cold.url}/v1/info", headers=viewer).json()
        assert info["authentication"] == "api_key"
        assert httpx.get(f"{cold.url}/metrics", headers=team).status_code == 200
        sent = json.dumps(fresh_emulator.last_request_headers())
        assert "team-a-key" not in sent
        logs = cold.logs()
        assert "principal=team-a" in logs
        assert "team-a-key" not in logs and "viewer-key" not in logs

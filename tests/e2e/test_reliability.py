"""End-to-end faults and bad input against a real library-mode service and the emulator.

Azure errors (injected with the emulator's ``!status NNN`` prompt), a slow Entra ID, malformed
bodies: each gets a clear status and JSON detail, never a 500 or a hang, and every request is
counted as answered.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from support.emulator import EmulatorHandle
from support.metrics import metric
from support.service import (
    ServiceHandle,
    free_port,
    service_config,
    stack_environment,
    start_service,
)

pytestmark = pytest.mark.slow


def _query(service: ServiceHandle, text: str) -> httpx.Response:
    return httpx.post(f"{service.url}/v1/query", json={"query": text}, timeout=60)


@pytest.mark.parametrize(("injected", "expected"), [(429, 429), (500, 502), (503, 502)])
def test_azure_errors_become_clear_statuses(
    service: ServiceHandle, fresh_emulator: EmulatorHandle, injected: int, expected: int
) -> None:
    response = _query(service, f"!status {injected}")
    assert response.status_code == expected, response.text
    detail = response.json()["detail"]
    assert detail["response"] and detail["cause"]
    assert f"Injected status {injected}" in detail["cause"]
    assert _query(service, "fine again").json()["response"] == "You said: fine again"


def test_streaming_azure_error_is_an_error_event(
    service: ServiceHandle, fresh_emulator: EmulatorHandle
) -> None:
    response = httpx.post(
        f"{service.url}/v1/streaming_query", json={"query": "!status 500"}, timeout=60
    )
    if response.status_code == 200:  # the error came after the stream started
        assert '"event": "error"' in response.text or '"event":"error"' in response.text
    else:
        assert response.status_code == 502
        assert response.json()["detail"]["cause"]


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"query": "\xff\xfe broken"}', "application/json"),
        (b'{"query": ', "application/json"),
        (b"query=hello", "application/x-www-form-urlencoded"),
        (b"hello", "text/plain"),
        (b"[1, 2, 3]", "application/json"),
    ],
)
def test_malformed_bodies_are_4xx_with_detail(
    service: ServiceHandle, content: bytes, content_type: str
) -> None:
    routes = {
        "/v1/query": "detail",
        "/v1/streaming_query": "detail",
        "/v1/chat/completions": "error",
    }
    for route, key in routes.items():  # lightspeed's shape, and OpenAI's on the OpenAI route
        response = httpx.post(
            f"{service.url}{route}",
            content=content,
            headers={"content-type": content_type},
            timeout=30,
        )
        assert 400 <= response.status_code < 500, (route, response.status_code, response.text)
        assert key in response.json()


def test_every_request_is_counted_as_answered(
    service: ServiceHandle, fresh_emulator: EmulatorHandle
) -> None:
    name = "llama_entra_requests_total"
    labels = {"route": "/v1/query", "method": "POST"}
    before = {s: metric(service.url, name, status=s, **labels) for s in ("200", "422", "429")}
    statuses = [_query(service, f"count {n}").status_code for n in range(10)]
    statuses.append(_query(service, "!status 429").status_code)
    statuses.append(httpx.post(f"{service.url}/v1/query", json={}, timeout=30).status_code)
    after = {s: metric(service.url, name, status=s, **labels) for s in ("200", "422", "429")}
    assert statuses.count(200) == 10
    assert {s: after[s] - before[s] for s in after} == {"200": 10, "422": 1, "429": 1}


def test_entra_slower_than_the_timeout_is_503_naming_it(
    fresh_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    path = service_config(tmp_path, fresh_emulator, entra={"timeout_seconds": 1})
    with start_service(path, stack_environment(fresh_emulator, tmp_path / "state")) as cold:
        fresh_emulator.delay_next_token_requests(1, 5)
        response = _query(cold, "too slow")
        assert response.status_code == 503
        assert "timed out" in response.json()["detail"]["cause"]
        assert response.elapsed.total_seconds() < 5


def test_client_disconnect_mid_stream_ends_the_handler(
    service: ServiceHandle, fresh_emulator: EmulatorHandle
) -> None:
    fresh_emulator.set_stream_delay(0.05)  # 200 words: the full stream would take > 10 s
    words = " ".join(f"w{n}" for n in range(200))
    with (
        httpx.Client(timeout=30) as client,
        client.stream("POST", f"{service.url}/v1/streaming_query", json={"query": words}) as reply,
    ):
        assert reply.status_code == 200
        for line in reply.iter_lines():
            if '"token"' in line:
                break  # one token seen; leaving the block drops the connection
    in_progress = "llama_entra_requests_in_progress"
    deadline = time.monotonic() + 3
    while metric(service.url, in_progress) != 1:  # 1: the scrape itself
        assert time.monotonic() < deadline, "the streaming handler kept running"
        time.sleep(0.1)
    assert _query(service, "still serving").status_code == 200


def test_entra_refusing_connections_starts_ready_and_answers_503(
    fresh_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    nowhere = f"https://127.0.0.1:{free_port()}"  # nothing listens: connection refused
    path = service_config(tmp_path, fresh_emulator, entra={"authority_host": nowhere})
    with start_service(path, stack_environment(fresh_emulator, tmp_path / "state")) as cold:
        assert httpx.get(f"{cold.url}/readiness", timeout=10).status_code == 200
        response = _query(cold, "anyone there?")
        assert response.status_code == 503
        detail = response.json()["detail"]
        assert "Entra ID" in detail["response"]
        assert "authority unreachable" in detail["cause"]

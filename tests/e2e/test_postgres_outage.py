"""End-to-end: Llama Stack's PostgreSQL database down at start-up and later, then back.

A real ``llama-entra serve`` in library mode on ``run-configs/azure-postgres.yaml`` and the
session's real PostgreSQL server, which these tests stop and start again (same port, same
data). The service must start without the database, say why it is not ready, answer 503 naming
the database, recover without a restart, and never show the database password.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.emulator import EmulatorHandle
from support.postgres import PostgresServer
from support.service import ServiceHandle, service_config, stack_environment, start_service

pytestmark = pytest.mark.slow


@pytest.fixture
def database_comes_back(postgres: PostgresServer) -> Iterator[PostgresServer]:
    """The session server, started again after the test whatever happened."""
    try:
        yield postgres
    finally:
        if not postgres.is_running():
            postgres.start()


def _wait_for_status(url: str, status: int, deadline_seconds: float = 90) -> httpx.Response:
    deadline = time.monotonic() + deadline_seconds
    while True:
        # Long per call: while Llama Stack (re)starts in-process the service answers late.
        response = httpx.get(url, timeout=60)
        if response.status_code == status:
            return response
        assert time.monotonic() < deadline, f"{url}: {response.status_code} {response.text}"
        time.sleep(0.2)


def _assert_names_the_database(response: httpx.Response, label: str) -> dict[str, Any]:
    assert response.status_code == 503, response.text
    detail: dict[str, Any] = response.json()["detail"]
    assert detail["response"] == "Database unavailable"
    assert label in detail["cause"], detail
    return detail


def test_database_down_at_start_up_then_back_then_down_and_back_again(
    emulator: EmulatorHandle,
    database_comes_back: PostgresServer,
    tmp_path: Path,
    postgres_db: str,
) -> None:
    postgres = database_comes_back
    label = f"PostgreSQL database '{postgres_db}' at {postgres.host}:{postgres.port}"
    path = service_config(tmp_path, emulator, run_config="azure-postgres.yaml")
    env = stack_environment(emulator, tmp_path / "state") | postgres.environment(postgres_db)
    bodies: list[str] = []

    postgres.stop()
    with start_service(path, env) as service:  # waits for /liveness: it starts without it
        _check_down(service, label, bodies)
        info = httpx.get(f"{service.url}/v1/info", timeout=10).json()
        assert info["database"]["name"] == postgres_db
        assert info["database"]["llama_stack_started"] is False
        assert "refused" in info["database"]["last_error"]
        bodies.append(str(info))

        postgres.start()
        ready = _wait_for_status(f"{service.url}/readiness", 200)
        assert ready.json()["reason"] == "All providers are healthy"
        first = _query(service, "first words")
        assert first.status_code == 200, first.text
        conversation = first.json()["conversation_id"]

        postgres.stop()  # later: under a running service
        _check_down(service, label, bodies, conversation)

        postgres.start()
        _wait_for_status(f"{service.url}/readiness", 200)
        again = _query(service, "more words", conversation_id=conversation)
        assert again.status_code == 200, again.text  # no restart, the conversation is there
        assert again.json()["input_tokens"] > first.json()["input_tokens"]
        bodies.append(httpx.get(f"{service.url}/v1/info", timeout=10).text)
        logs = service.logs()

    assert label in logs  # the log says what is missing ...
    for text in [logs, *bodies]:
        assert postgres.password not in text  # ... never the password


def _query(service: ServiceHandle, text: str, **fields: Any) -> httpx.Response:
    return httpx.post(f"{service.url}/v1/query", json={"query": text, **fields}, timeout=60)


def _check_down(
    service: ServiceHandle, label: str, bodies: list[str], conversation: str | None = None
) -> None:
    assert httpx.get(f"{service.url}/liveness", timeout=10).status_code == 200
    readiness = _wait_for_status(f"{service.url}/readiness", 503)
    _assert_names_the_database(readiness, label)
    fields = {"conversation_id": conversation} if conversation else {}
    answer = _query(service, "while it is down", **fields)
    _assert_names_the_database(answer, label)
    listed = httpx.get(f"{service.url}/v1/conversations", timeout=60)
    _assert_names_the_database(listed, label)  # the conversation index is on it too
    bodies += [readiness.text, answer.text, listed.text]

"""Benchmark (``make bench``): per-query cost of Llama Stack's stores on PostgreSQL vs SQLite.

Two library-mode services in the same run against the emulator: one on ``run-configs/azure.yaml``
(SQLite files in the pod), one on ``run-configs/azure-postgres.yaml`` (a local PostgreSQL
server with fsync and synchronous commit on, as in production). Each ``/v1/query`` continues a
conversation (a new one every 10 turns), so it reads the history and writes a turn: the store
work a user's query causes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path

import httpx
import pytest

from support.bench import report, summarize, timed
from support.emulator import EmulatorHandle
from support.postgres import PostgresServer, start_postgres
from support.service import ServiceHandle, service_config, stack_environment, start_service

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "300"))


@pytest.fixture(scope="module")
def durable_postgres() -> Iterator[PostgresServer]:
    with start_postgres(durable=True) as server:
        yield server


def _service(
    emulator: EmulatorHandle, directory: Path, run_config: str, extra_env: dict[str, str]
) -> AbstractContextManager[ServiceHandle]:
    directory.mkdir(parents=True)
    quiet = {"service": {"state_dir": str(directory / "state"), "log_level": "warning"}}
    path = service_config(directory, emulator, extra=quiet, run_config=run_config)
    return start_service(path, stack_environment(emulator, directory / "state") | extra_env)


def _turn(client: httpx.Client, service: ServiceHandle, conversation: str, text: str) -> None:
    body = {"query": text, "conversation_id": conversation}
    response = client.post(f"{service.url}/v1/query", json=body)
    assert response.status_code == 200, response.text


def test_bench_postgres_stores_per_query_cost(
    emulator: EmulatorHandle, durable_postgres: PostgresServer, tmp_path: Path
) -> None:
    """/v1/query continuing a conversation: PostgreSQL stores vs SQLite stores, same run."""
    database = durable_postgres.create_database("bench")
    pg_env = durable_postgres.environment(database)
    with (
        _service(emulator, tmp_path / "sqlite", "azure.yaml", {}) as sqlite,
        _service(emulator, tmp_path / "pg", "azure-postgres.yaml", pg_env) as postgres,
        httpx.Client(timeout=30) as client,
    ):
        conversations: dict[str, str] = {}

        def restart_conversations() -> None:
            for service in (sqlite, postgres):
                first = client.post(f"{service.url}/v1/query", json={"query": "start"})
                conversations[service.url] = first.json()["conversation_id"]

        restart_conversations()
        for n in range(10):  # warm: imports, pools, the token
            for service in (sqlite, postgres):
                _turn(client, service, conversations[service.url], f"warm {n}")
        on_sqlite: list[float] = []
        on_postgres: list[float] = []
        for n in range(ROUNDS):  # interleaved, alternating order, so drift hits both alike
            if n % 10 == 0:
                restart_conversations()
            pairs = [(on_postgres, postgres), (on_sqlite, sqlite)]
            for samples, service in pairs if n % 2 else reversed(pairs):
                conversation, text = conversations[service.url], f"round {n}"
                samples.append(timed(partial(_turn, client, service, conversation, text)))
    pg_summary = summarize("/v1/query in a conversation, PostgreSQL stores", on_postgres)
    sqlite_summary = summarize("/v1/query in a conversation, SQLite (baseline)", on_sqlite)
    ratio = pg_summary.median_ms / sqlite_summary.median_ms
    added = pg_summary.median_ms - sqlite_summary.median_ms
    report(
        "postgres-stores-per-query-cost",
        [pg_summary, sqlite_summary],
        {
            "median_ratio": round(ratio, 3),
            "median_added_ms": round(added, 2),
            "goal": "<= 1.5 (a shared database costs milliseconds, not a multiple)",
            "goal_met": ratio <= 1.5,
        },
    )

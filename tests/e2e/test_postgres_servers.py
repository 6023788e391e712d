"""End-to-end: several Llama Stack servers (service mode) start together on one empty database.

Two real servers started at the same moment through the container entrypoint on
``run-configs/azure-postgres.yaml``: the entrypoint creates the tables under the database's
start-up lock before each server starts, so neither races on ``CREATE TABLE``; a llama-entra
service on each server continues the other's conversation.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from support.emulator import EmulatorHandle
from support.postgres import PostgresServer
from support.service import (
    ROOT,
    ServiceHandle,
    service_config,
    stack_environment,
    start_llama_stack,
    start_service,
)

pytestmark = pytest.mark.slow


def _query(service: ServiceHandle, text: str, **fields: str) -> dict[str, object]:
    reply = httpx.post(f"{service.url}/v1/query", json={"query": text, **fields}, timeout=60)
    assert reply.status_code == 200, reply.text
    body: dict[str, object] = reply.json()
    return body


def test_servers_started_together_on_an_empty_database_share_conversations(
    emulator: EmulatorHandle, postgres: PostgresServer, tmp_path: Path
) -> None:
    database = postgres.create_database("servers_cold_start")
    run_config = ROOT / "run-configs" / "azure-postgres.yaml"

    def server(index: int, stack: contextlib.ExitStack) -> ServiceHandle:
        home = tmp_path / f"server-{index}"
        home.mkdir()
        env = stack_environment(emulator, home / "state") | postgres.environment(database)
        config = service_config(home, emulator)
        # The second server waits for the first one's tables: two starts in a row.
        started = start_llama_stack(config, env, run_config=run_config, deadline_seconds=240)
        return stack.enter_context(started)

    with contextlib.ExitStack() as stack:
        with ThreadPoolExecutor(max_workers=2) as pool:
            servers = list(pool.map(lambda index: server(index, stack), range(2)))
        services = []
        for index, llama_stack in enumerate(servers):
            home = tmp_path / f"service-{index}"
            home.mkdir()
            env = stack_environment(emulator, home / "state")
            config = service_config(home, emulator, mode="service", llama_stack_url=llama_stack.url)
            services.append(stack.enter_context(start_service(config, env)))
        first = _query(services[0], "one two three")
        second = _query(services[1], "four", conversation_id=str(first["conversation_id"]))
        assert second["conversation_id"] == first["conversation_id"]
        alone = _query(services[1], "four")
        assert int(str(second["input_tokens"])) > int(str(alone["input_tokens"]))
        for llama_stack in servers:
            logs = llama_stack.logs()
            for failure in ("already exists", "UniqueViolation", "Traceback"):
                assert failure not in logs, f"{failure!r} in {llama_stack.log_path}"

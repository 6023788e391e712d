"""End-to-end: many library-mode replicas on one PostgreSQL database share their state.

Real ``llama-entra serve`` processes on ``run-configs/azure-postgres.yaml``, the session's real
PostgreSQL server (``support.postgres``), the emulator for Entra ID and Azure OpenAI. Each
replica has its own empty state directory, as pods with an ``emptyDir`` have: whatever one
replica sees of another's work came through the database.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llama_entra.storage.database import STARTUP_LOCK_KEY
from support.emulator import EmulatorHandle
from support.postgres import PostgresServer
from support.service import (
    ServiceHandle,
    service_config,
    stack_environment,
    start_replicas,
    wait_until_up,
)

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def replicas(
    count: int,
    directory: Path,
    emulator: EmulatorHandle,
    postgres: PostgresServer,
    database: str,
    *,
    wait: bool = True,
) -> Iterator[list[ServiceHandle]]:
    """``count`` replicas started together, each with a fresh state directory."""
    specs = []
    for index in range(count):
        home = directory / f"replica-{index}"
        home.mkdir(parents=True)
        path = service_config(home, emulator, run_config="azure-postgres.yaml")
        env = stack_environment(emulator, home / "state") | postgres.environment(database)
        specs.append((path, env))
    with start_replicas(specs, wait=wait) as handles:
        yield handles


def query(replica: ServiceHandle, text: str, **fields: Any) -> dict[str, Any]:
    response = httpx.post(f"{replica.url}/v1/query", json={"query": text, **fields}, timeout=60)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def respond(replica: ServiceHandle, model: str, text: str, previous: str | None) -> Any:
    with openai.OpenAI(base_url=f"{replica.url}/v1", api_key="unused", max_retries=0) as client:
        return client.responses.create(model=model, input=text, previous_response_id=previous)


def lock_waiters(postgres: PostgresServer, database: str) -> int:
    """Sessions waiting for an advisory lock on ``database``."""
    with contextlib.closing(postgres.connect(database)) as connection, connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
            "WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = %s",
            (database,),
        )
        return int(cur.fetchone()[0])


def tables(postgres: PostgresServer, database: str) -> set[str]:
    with contextlib.closing(postgres.connect(database)) as connection, connection.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row[0] for row in cur.fetchall()}


@pytest.fixture(scope="module")
def cold_started(
    emulator: EmulatorHandle, postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[list[ServiceHandle], str]]:
    """Three replicas started at the same moment on an empty database."""
    database = postgres.create_database("shared_cold_start")
    assert tables(postgres, database) == set()
    with replicas(3, tmp_path_factory.mktemp("cold"), emulator, postgres, database) as handles:
        yield handles, database


def test_replicas_cold_start_together_on_an_empty_database(
    cold_started: tuple[list[ServiceHandle], str], postgres: PostgresServer
) -> None:
    handles, database = cold_started
    created = tables(postgres, database)
    expected = {"llamastack_kvstore", "openai_conversations", "inference_store", "responses"}
    assert expected <= created, created
    # Every replica serves at once: concurrent first queries on each, no table missing.
    with ThreadPoolExecutor(max_workers=9) as pool:
        answers = list(pool.map(lambda i: query(handles[i % 3], f"cold {i}"), range(9)))
    assert [a["response"] for a in answers] == [f"You said: cold {i}" for i in range(9)]
    index = {"llama_entra_conversations", "llama_entra_turns"}  # made by the first query
    assert index <= tables(postgres, database)
    for handle in handles:
        ready = httpx.get(f"{handle.url}/readiness", timeout=10)
        assert ready.status_code == 200, ready.text
        assert ready.json()["overall_status"] == "healthy"
        logs = handle.logs()
        for failure in ("already exists", "UniqueViolation", "could not prime", "Traceback"):
            assert failure not in logs, f"{failure!r} in {handle.log_path}"


def test_replicas_continue_each_others_conversations_both_ways(
    cold_started: tuple[list[ServiceHandle], str],
) -> None:
    (a, b, _), _ = cold_started
    first = query(a, "one two three")
    conversation = first["conversation_id"]
    second = query(b, "four", conversation_id=conversation)
    assert second["conversation_id"] == conversation
    # B sent A's turn to Azure: the prompt holds more than its own one word.
    assert second["input_tokens"] > query(b, "four")["input_tokens"]
    third = query(a, "five", conversation_id=conversation)
    assert third["input_tokens"] > second["input_tokens"]  # A saw B's turn


def test_every_replica_lists_every_conversation_of_a_caller(
    cold_started: tuple[list[ServiceHandle], str],
) -> None:
    handles, _ = cold_started
    created = {
        query(handle, f"listed from {i}")["conversation_id"] for i, handle in enumerate(handles)
    }
    for handle in handles:
        listed = httpx.get(f"{handle.url}/v1/conversations", timeout=30)
        assert listed.status_code == 200, listed.text
        assert created <= {c["conversation_id"] for c in listed.json()["conversations"]}
    one = sorted(created)[0]
    details = httpx.get(f"{handles[2].url}/v1/conversations/{one}", timeout=30).json()
    assert len(details["chat_history"]) == 1
    deleted = httpx.delete(f"{handles[1].url}/v1/conversations/{one}", timeout=30)
    assert deleted.json()["deleted"] is True
    listed = httpx.get(f"{handles[0].url}/v1/conversations", timeout=30).json()["conversations"]
    assert one not in {c["conversation_id"] for c in listed}


def test_replicas_continue_each_others_responses_chains_both_ways(
    cold_started: tuple[list[ServiceHandle], str], emulator: EmulatorHandle
) -> None:
    (a, b, c), _ = cold_started
    model = f"azure/{emulator.model}"
    first = respond(a, model, "alpha beta gamma", None)
    second = respond(b, model, "delta", first.id)
    third = respond(c, model, "epsilon", second.id)
    back = respond(a, model, "zeta", third.id)
    assert back.output_text == "You said: zeta"
    lone = respond(a, model, "zeta", None)
    tokens = [r.usage.input_tokens for r in (first, second, third, back)]
    assert tokens == sorted(tokens) and tokens[-1] > lone.usage.input_tokens, tokens


def test_state_survives_restarting_every_replica_with_empty_pod_storage(
    emulator: EmulatorHandle, postgres: PostgresServer, tmp_path: Path, postgres_db: str
) -> None:
    model = f"azure/{emulator.model}"
    with replicas(1, tmp_path / "before", emulator, postgres, postgres_db) as (only,):
        started = query(only, "remember this please")
        response = respond(only, model, "and this too", None)
    # Every replica is gone; new ones start with empty state directories.
    with replicas(2, tmp_path / "after", emulator, postgres, postgres_db) as (a, b):
        again = query(a, "still there?", conversation_id=started["conversation_id"])
        assert again["input_tokens"] > query(a, "still there?")["input_tokens"]
        follow_up = respond(b, model, "next", response.id)
        assert follow_up.usage.input_tokens > respond(b, model, "next", None).usage.input_tokens


def test_replicas_starting_together_take_turns_on_the_start_up_lock(
    emulator: EmulatorHandle, postgres: PostgresServer, tmp_path: Path, postgres_db: str
) -> None:
    """While the start-up lock is held, replicas wait for it and create no table."""
    with contextlib.closing(postgres.connect(postgres_db)) as holder, holder.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", (STARTUP_LOCK_KEY,))
        with replicas(2, tmp_path, emulator, postgres, postgres_db, wait=False) as handles:
            deadline = time.monotonic() + 120
            while (waiting := lock_waiters(postgres, postgres_db)) < 2:
                assert not tables(postgres, postgres_db), "a replica created tables unlocked"
                assert time.monotonic() < deadline, f"{waiting} of 2 replicas wait for the lock"
                for handle in handles:
                    assert handle.process.poll() is None, handle.logs()[-2000:]
                time.sleep(0.1)
            assert not tables(postgres, postgres_db)
            cursor.execute("SELECT pg_advisory_unlock(%s)", (STARTUP_LOCK_KEY,))
            for handle in handles:
                wait_until_up(f"{handle.url}/readiness", handle.process, handle.log_path, 120)
            conversation = query(handles[0], "after the lock")["conversation_id"]
            query(handles[1], "continued", conversation_id=conversation)

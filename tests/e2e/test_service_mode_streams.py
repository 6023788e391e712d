"""Service mode under concurrent streams, on the backend's real server (the container
entrypoint's), with the emulator streaming each answer in chunks.

Many streams at once all complete, each with its own conversation whose turn the server
stored (conversation writes at once, not one failing behind another's lock); a second turn
continues one of them (the server's model lookups and pooled connections answer the same);
and once the server has stopped, its inference store holds one record per answer (queued
records are written before the stack stops).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.emulator import EmulatorHandle
from support.service import (
    ServiceHandle,
    service_config,
    stack_environment,
    start_llama_stack,
    start_service,
)

STREAMS = 60


@pytest.fixture
def slow_chunks(fresh_emulator: EmulatorHandle) -> Iterator[EmulatorHandle]:
    """Answers streamed as a model does (chunks apart), so that the streams overlap."""
    fresh_emulator.set_stream_delay(0.05)
    try:
        yield fresh_emulator
    finally:
        fresh_emulator.set_stream_delay(0.0)


async def _stream(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> dict[str, Any]:
    """The events of one streamed answer, by name (tokens joined)."""
    async with client.stream("POST", f"{url}/v1/streaming_query", json=body) as response:
        assert response.status_code == 200, await response.aread()
        events: dict[str, Any] = {"token": ""}
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                event = json.loads(line[6:])
                if event["event"] == "token":
                    events["token"] += event["data"]["token"]
                else:
                    events[event["event"]] = event["data"]
    return events


async def _many(url: str) -> list[dict[str, Any]]:
    limits = httpx.Limits(max_connections=STREAMS)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        bodies = [
            {"query": f"question {n}", "generate_topic_summary": False} for n in range(STREAMS)
        ]
        return await asyncio.gather(*(_stream(client, url, body) for body in bodies))


def _records(state_dir: Path) -> int:
    with sqlite3.connect(state_dir / "inference_store.db") as database:
        (count,) = database.execute("select count(*) from inference_store").fetchone()
    return int(count)


def test_concurrent_streams_complete_with_their_conversations_and_records(
    slow_chunks: EmulatorHandle, tmp_path: Path
) -> None:
    state_dir = tmp_path / "stack-state"
    env = stack_environment(slow_chunks, state_dir)
    (tmp_path / "stack").mkdir()
    with start_llama_stack(service_config(tmp_path / "stack", slow_chunks), env) as stack:
        (tmp_path / "service").mkdir()
        path = service_config(
            tmp_path / "service", slow_chunks, mode="service", llama_stack_url=stack.url
        )
        with start_service(path, env) as service:
            answers = asyncio.run(_many(service.url))
            assert [a["token"] for a in answers] == [
                f"You said: question {n}" for n in range(STREAMS)
            ]
            assert all("end" in answer for answer in answers)
            conversations = [answer["start"]["conversation_id"] for answer in answers]
            assert len(set(conversations)) == STREAMS
            for n in (0, STREAMS // 2, STREAMS - 1):
                assert _history(service, conversations[n]) == [
                    [f"question {n}", f"You said: question {n}"]
                ]
            again = {
                "query": "and then?",
                "conversation_id": conversations[0],
                "generate_topic_summary": False,
            }
            response = httpx.post(f"{service.url}/v1/query", json=again, timeout=60)
            assert response.status_code == 200, response.text
            assert response.json()["response"] == "You said: and then?"
            assert len(_history(service, conversations[0])) == 2
        assert "database is locked" not in stack.logs()
    assert _records(state_dir) == STREAMS + 1


def _history(service: ServiceHandle, conversation_id: str) -> list[list[str]]:
    got = httpx.get(f"{service.url}/v1/conversations/{conversation_id}", timeout=30)
    assert got.status_code == 200, got.text
    return [[m["content"] for m in turn["messages"]] for turn in got.json()["chat_history"]]

"""End-to-end: the faster query path keeps its promises (issue 19), on the active backend.

Real ``llama-entra serve`` processes against the emulator, read back through the service's
own conversations API. A turn the caller was told about is in the store (plain and streamed,
new and continued); a failed model call stores nothing (the emulator fails a call whose
question starts with ``!status NNN``); a long conversation reaches the model whole; and with
two replicas on one PostgreSQL database, one replica never answers from history the other
has moved past (the history cache must confirm it against the store).

The emulator answers "You said: QUESTION" and counts a prompt's tokens as the words of all
its messages, so ``input_tokens`` says exactly which history reached the model.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.emulator import EmulatorHandle
from support.postgres import PostgresServer
from support.service import (
    ServiceHandle,
    service_config,
    stack_environment,
    start_llama_stack,
    start_replicas,
    start_service,
)

pytestmark = pytest.mark.slow


def _query(service: ServiceHandle, text: str, **fields: Any) -> httpx.Response:
    body = {"query": text, "generate_topic_summary": False, **fields}
    return httpx.post(f"{service.url}/v1/query", json=body, timeout=60)


def _answered(service: ServiceHandle, text: str, **fields: Any) -> dict[str, Any]:
    response = _query(service, text, **fields)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _streamed(service: ServiceHandle, text: str, **fields: Any) -> tuple[int, list[dict[str, Any]]]:
    """Status and the events of ``/v1/streaming_query``, read to the end."""
    body = {"query": text, "generate_topic_summary": False, **fields}
    url = f"{service.url}/v1/streaming_query"
    with httpx.stream("POST", url, json=body, timeout=60) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
        return response.status_code, [json.loads(line[6:]) for line in lines]


def _turns(service: ServiceHandle, conversation_id: str) -> list[list[str]]:
    response = httpx.get(f"{service.url}/v1/conversations/{conversation_id}", timeout=30)
    assert response.status_code == 200, response.text
    return [[m["content"] for m in turn["messages"]] for turn in response.json()["chat_history"]]


def _listed(service: ServiceHandle) -> dict[str, int]:
    response = httpx.get(f"{service.url}/v1/conversations", timeout=30)
    assert response.status_code == 200, response.text
    return {c["conversation_id"]: c["message_count"] for c in response.json()["conversations"]}


def _turn(question: str) -> list[str]:
    return [question, f"You said: {question}"]


def _tokens(history: list[str], question: str) -> int:
    """What the emulator counts for a prompt of ``history`` turns' questions and ``question``."""
    words = sum(2 * len(q.split()) + 2 for q in history)  # the question and "You said: ..."
    return words + len(question.split())


def test_an_answered_turn_is_in_the_store_plain_and_streamed(service: ServiceHandle) -> None:
    conversation = _answered(service, "alpha one")["conversation_id"]
    assert _turns(service, conversation) == [_turn("alpha one")]  # a new conversation, one call
    _answered(service, "beta two", conversation_id=conversation)
    status, events = _streamed(service, "gamma three", conversation_id=conversation)
    assert status == 200 and events[-1]["event"] == "end", events
    assert _turns(service, conversation) == [
        _turn("alpha one"),
        _turn("beta two"),
        _turn("gamma three"),
    ]
    status, events = _streamed(service, "delta four")
    assert status == 200 and events[-1]["event"] == "end", events
    streamed = events[0]["data"]["conversation_id"]
    assert _turns(service, streamed) == [_turn("delta four")]
    listed = _listed(service)
    assert listed[conversation] == 3 and listed[streamed] == 1


def test_a_failed_model_call_stores_nothing(service: ServiceHandle) -> None:
    before = _listed(service)
    failed = _query(service, "!status 500 first question")
    assert failed.status_code == 502, failed.text
    status, _ = _streamed(service, "!status 500 first question, streamed")
    assert status == 502
    assert _listed(service) == before  # no conversation made, or it was deleted again
    conversation = _answered(service, "kept")["conversation_id"]
    assert _query(service, "!status 503 again", conversation_id=conversation).status_code == 502
    status, _ = _streamed(service, "!status 500 streamed", conversation_id=conversation)
    assert status == 502
    assert _turns(service, conversation) == [_turn("kept")]
    assert _listed(service)[conversation] == 1
    # The conversation still takes turns, and its history holds only what was answered.
    after = _answered(service, "next", conversation_id=conversation)
    assert after["input_tokens"] == _tokens(["kept"], "next")


def test_a_new_streamed_conversation_is_written_whole_or_not_at_all(
    service: ServiceHandle, fresh_emulator: EmulatorHandle
) -> None:
    """Library mode reserves the id for ``start`` and writes the conversation with its turn:
    until the answer ends it is unknown, and a caller hanging up mid-answer leaves nothing."""
    before = _listed(service)
    body = {"query": "please answer slowly", "generate_topic_summary": False}
    fresh_emulator.set_stream_delay(0.25)  # a chunk per word: about 1 s for the whole answer
    try:
        url = f"{service.url}/v1/streaming_query"
        with httpx.stream("POST", url, json=body, timeout=60) as response:
            lines = response.iter_lines()
            events = (json.loads(line[6:]) for line in lines if line.startswith("data: "))
            start = next(events)
            conversation = start["data"]["conversation_id"]
            assert next(events)["event"] == "token"
            unknown = httpx.get(f"{service.url}/v1/conversations/{conversation}", timeout=30)
            assert unknown.status_code == 404, unknown.text  # not yet answered: not yet stored
        time.sleep(2.0)  # well past the time the whole answer would have taken
    finally:
        fresh_emulator.set_stream_delay(0)
    assert _listed(service) == before
    gone = httpx.get(f"{service.url}/v1/conversations/{conversation}", timeout=30)
    assert gone.status_code == 404, gone.text
    status, events = _streamed(service, "and this one is read to the end")
    assert status == 200 and events[-1]["event"] == "end", events
    kept = events[0]["data"]["conversation_id"]
    assert _turns(service, kept) == [_turn("and this one is read to the end")]


def test_a_long_conversation_reaches_the_model_whole(service: ServiceHandle) -> None:
    """60 turns, 120 items: more than one page of Llama Stack's listing (100)."""
    questions = [f"turn number {n}" for n in range(60)]
    conversation = _answered(service, questions[0])["conversation_id"]
    for question in questions[1:]:
        _answered(service, question, conversation_id=conversation)
    last = _answered(service, "and the last one", conversation_id=conversation)
    assert last["input_tokens"] == _tokens(questions, "and the last one")
    assert last["response"] == "You said: and the last one"
    again = _answered(service, "once more", conversation_id=conversation)
    assert again["input_tokens"] == _tokens([*questions, "and the last one"], "once more")
    assert _listed(service)[conversation] == 62


@contextlib.contextmanager
def _two_replicas(
    directory: Path, emulator: EmulatorHandle, postgres: PostgresServer, database: str
) -> Iterator[list[ServiceHandle]]:
    specs = []
    for index in range(2):
        home = directory / f"replica-{index}"
        home.mkdir(parents=True)
        path = service_config(home, emulator, run_config="azure-postgres.yaml")
        env = stack_environment(emulator, home / "state") | postgres.environment(database)
        specs.append((path, env))
    with start_replicas(specs) as handles:
        yield handles


def test_two_replicas_never_answer_from_stale_history(
    emulator: EmulatorHandle, postgres: PostgresServer, postgres_db: str, tmp_path: Path
) -> None:
    with _two_replicas(tmp_path, emulator, postgres, postgres_db) as (a, b):
        conversation = _answered(a, "one")["conversation_id"]
        _answered(a, "two", conversation_id=conversation)  # A reads the history (and keeps it)
        _answered(a, "three", conversation_id=conversation)  # A continues what it knows
        _answered(b, "four", conversation_id=conversation)  # B adds a turn A has not seen
        last = _answered(a, "five", conversation_id=conversation)
        assert last["input_tokens"] == _tokens(["one", "two", "three", "four"], "five")
        status, events = _streamed(b, "six", conversation_id=conversation)
        assert status == 200 and events[-1]["data"]["input_tokens"] == _tokens(
            ["one", "two", "three", "four", "five"], "six"
        )
        seven = _answered(a, "seven", conversation_id=conversation)
        assert seven["input_tokens"] == _tokens(
            ["one", "two", "three", "four", "five", "six"], "seven"
        )
        questions = ["one", "two", "three", "four", "five", "six", "seven"]
        assert _turns(a, conversation) == [_turn(q) for q in questions]
        # Deleted through B: A must not continue it from what it remembers.
        deleted = httpx.delete(f"{b.url}/v1/conversations/{conversation}", timeout=30)
        assert deleted.status_code == 200 and deleted.json()["deleted"] is True
        gone = _query(a, "eight", conversation_id=conversation)
        assert gone.status_code == 404, gone.text


def test_service_mode_keeps_turns_and_history_through_the_server(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """Through a Llama Stack server: the first turn made with its conversation, later turns
    continued with the whole history (on OGX the third one confirmed from the cache)."""
    env = stack_environment(emulator, tmp_path / "state")
    (tmp_path / "stack").mkdir()
    (tmp_path / "service").mkdir()
    with start_llama_stack(service_config(tmp_path / "stack", emulator), env) as stack:
        path = service_config(
            tmp_path / "service", emulator, mode="service", llama_stack_url=stack.url
        )
        with start_service(path, env) as service:
            conversation = _answered(service, "one")["conversation_id"]
            asked = ["one"]
            for question in ("two", "three", "four"):
                answer = _answered(service, question, conversation_id=conversation)
                assert answer["input_tokens"] == _tokens(asked, question)
                asked.append(question)
            assert _turns(service, conversation) == [_turn(q) for q in asked]
            assert _query(service, "!status 500", conversation_id=conversation).status_code == 502
            assert _turns(service, conversation) == [_turn(q) for q in asked]

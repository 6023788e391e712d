"""End-to-end: lightspeed-stack's conversations API (v1 and v2), scoped per caller.

A real service with ``api_key`` inbound auth and two callers (alice, bob) against the emulator.
Each sees only its own conversations; another caller's conversation is "not found" for reading,
updating and deleting; the list survives a restart of the service (same state dir).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import yaml

from support.emulator import EmulatorHandle
from support.service import ServiceHandle, service_config, stack_environment, start_service

pytestmark = pytest.mark.slow

ALICE = {"Authorization": "Bearer alice-key"}
BOB = {"Authorization": "Bearer bob-key"}


NAME = "Lightspeed on Entra"


def _config(directory: Path, emulator: EmulatorHandle) -> Path:
    auth = {"module": "api_key", "api_key": {"keys": {"alice": "alice-key", "bob": "bob-key"}}}
    extra = {"authentication": auth, "feedback": {"enabled": True}}
    path = service_config(directory, emulator, extra=extra)
    document = yaml.safe_load(path.read_text())
    document["service"]["name"] = NAME
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("conversations")


@pytest.fixture(scope="module")
def guarded(directory: Path, emulator: EmulatorHandle) -> Iterator[ServiceHandle]:
    env = stack_environment(emulator, directory / "state")
    with start_service(_config(directory, emulator), env) as handle:
        yield handle


def _ask(service: ServiceHandle, who: dict[str, str], text: str, **fields: Any) -> str:
    response = httpx.post(
        f"{service.url}/v1/query", json={"query": text, **fields}, headers=who, timeout=60
    )
    assert response.status_code == 200, response.text
    conversation_id: str = response.json()["conversation_id"]
    return conversation_id


def _call(
    service: ServiceHandle, method: str, path: str, who: dict[str, str], **kwargs: Any
) -> httpx.Response:
    return httpx.request(method, f"{service.url}{path}", headers=who, timeout=30, **kwargs)


def _topic(service: ServiceHandle, who: dict[str, str], conversation_id: str) -> str | None:
    """The conversation's topic summary once it is there (it is made in the background)."""
    deadline = time.monotonic() + 20
    while True:
        listed = _call(service, "GET", "/v1/conversations", who).json()["conversations"]
        found = next(c for c in listed if c["conversation_id"] == conversation_id)
        if found["topic_summary"] is not None or time.monotonic() > deadline:
            return cast(str | None, found["topic_summary"])
        time.sleep(0.05)


def test_each_caller_sees_only_its_own_conversations(
    guarded: ServiceHandle, emulator: EmulatorHandle
) -> None:
    alice_first = _ask(guarded, ALICE, "alice one")
    _ask(guarded, ALICE, "alice one, again", conversation_id=alice_first)
    alice_second = _ask(guarded, ALICE, "alice two", generate_topic_summary=False)
    bob_only = _ask(guarded, BOB, "bob one")

    listed = _call(guarded, "GET", "/v1/conversations", ALICE).json()["conversations"]
    assert {c["conversation_id"] for c in listed} >= {alice_first, alice_second}
    assert bob_only not in {c["conversation_id"] for c in listed}
    first = next(c for c in listed if c["conversation_id"] == alice_first)
    assert first["message_count"] == 2
    # lightspeed-stack names the model by its own id, the provider apart
    # (src/app/endpoints/conversations_v1.py: last_used_model, last_used_provider).
    assert (first["last_used_model"], first["last_used_provider"]) == (
        emulator.model,
        "azure",
    )
    # Made after the answer was sent (generate_topic_summary defaults to true), by the model.
    assert _topic(guarded, ALICE, alice_first) == "You said: alice one"
    second = next(c for c in listed if c["conversation_id"] == alice_second)
    assert second["topic_summary"] is None  # generate_topic_summary: false

    bobs = _call(guarded, "GET", "/v2/conversations", BOB).json()["conversations"]
    assert [c["conversation_id"] for c in bobs] == [bob_only]
    assert bobs[0]["last_message_timestamp"] > 0

    # Bob cannot read, update, delete or continue Alice's conversation: it does not exist for him.
    for method, path, body in [
        ("GET", f"/v1/conversations/{alice_first}", None),
        ("GET", f"/v2/conversations/{alice_first}", None),
        ("PUT", f"/v1/conversations/{alice_first}", {"topic_summary": "mine now"}),
    ]:
        response = _call(guarded, method, path, BOB, json=body)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["detail"]["response"] == "Conversation not found"
    deleted = _call(guarded, "DELETE", f"/v1/conversations/{alice_first}", BOB)
    assert deleted.status_code == 200
    assert deleted.json() == {  # what lightspeed-stack answers for an id it does not have
        "conversation_id": alice_first,
        "success": True,
        "deleted": False,
        "response": "Conversation not found",
    }
    stolen = httpx.post(
        f"{guarded.url}/v1/query",
        json={"query": "hi", "conversation_id": alice_first},
        headers=BOB,
        timeout=30,
    )
    assert stolen.status_code == 404
    assert _call(guarded, "GET", f"/v1/conversations/{alice_first}", ALICE).status_code == 200


def test_get_update_and_delete_a_conversation(
    guarded: ServiceHandle, emulator: EmulatorHandle
) -> None:
    conversation_id = _ask(guarded, ALICE, "first question")
    _ask(guarded, ALICE, "second question", conversation_id=conversation_id.removeprefix("conv_"))

    got = _call(guarded, "GET", f"/v1/conversations/{conversation_id}", ALICE)
    assert got.status_code == 200, got.text
    history = got.json()["chat_history"]
    assert [[m["type"] for m in turn["messages"]] for turn in history] == [
        ["user", "assistant"],
        ["user", "assistant"],
    ]
    assert [turn["messages"][1]["content"] for turn in history] == [
        "You said: first question",
        "You said: second question",
    ]
    assert (history[0]["provider"], history[0]["model"]) == ("azure", emulator.model)
    assert history[0]["started_at"] <= history[0]["completed_at"] <= history[1]["started_at"]

    path = f"/v1/conversations/{conversation_id}"
    updated = _call(guarded, "PUT", path, ALICE, json={"topic_summary": "Two questions"})
    assert updated.json() == {
        "conversation_id": conversation_id,
        "success": True,
        "message": "Topic summary updated successfully",
    }
    v2 = _call(guarded, "GET", "/v2/conversations", ALICE).json()["conversations"]
    assert {"conversation_id": conversation_id, "topic_summary": "Two questions"}.items() <= next(
        c for c in v2 if c["conversation_id"] == conversation_id
    ).items()

    deleted = _call(guarded, "DELETE", path, ALICE).json()
    assert deleted == {
        "conversation_id": conversation_id,
        "success": True,
        "deleted": True,
        "response": "Conversation deleted successfully",
    }
    assert _call(guarded, "GET", path, ALICE).status_code == 404
    listed = _call(guarded, "GET", "/v1/conversations", ALICE).json()["conversations"]
    assert conversation_id not in {c["conversation_id"] for c in listed}


_BAD = "Invalid conversation ID format"
_GONE = "Conversation not found"
_ZEROS = "/v1/conversations/conv_" + "0" * 48
_UUID = "/v1/conversations/c5260aec-4d82-4370-9fdf-05cf908b3f16"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "response"),
    [
        ("GET", "/v1/conversations/nope", None, 400, _BAD),
        ("DELETE", "/v2/conversations/nope", None, 400, _BAD),
        ("PUT", "/v1/conversations/nope", {"topic_summary": "x"}, 400, _BAD),
        ("GET", "/v1/conversations/" + "ab" * 24, None, 404, _GONE),
        ("GET", _UUID, None, 404, _GONE),
        ("PUT", _ZEROS, {"topic_summary": "x"}, 404, _GONE),
    ],
)
def test_lightspeed_error_cases(
    guarded: ServiceHandle,
    fresh_emulator: EmulatorHandle,
    method: str,
    path: str,
    body: dict[str, str] | None,
    status: int,
    response: str,
) -> None:
    answer = _call(guarded, method, path, ALICE, json=body)
    assert answer.status_code == status, answer.text
    assert answer.json()["detail"]["response"] == response
    assert fresh_emulator.counters()["completions"] == 0


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"topic_summary": ""}, {"type": "string_too_short", "loc": ["body", "topic_summary"]}),
        ({"summary": "x"}, {"type": "missing", "loc": ["body", "topic_summary"]}),
    ],
)
def test_invalid_update_is_fastapis_native_422(
    guarded: ServiceHandle, body: dict[str, str], error: dict[str, Any]
) -> None:
    """lightspeed-stack leaves request validation to FastAPI (``src/app/main.py``)."""
    answer = _call(guarded, "PUT", _ZEROS, ALICE, json=body)
    assert answer.status_code == 422, answer.text
    assert error.items() <= answer.json()["detail"][0].items()


def test_delete_of_an_unknown_conversation_is_200_not_deleted(guarded: ServiceHandle) -> None:
    """lightspeed-stack's ``src/app/endpoints/conversations_v1.py`` answers 200 with
    ``success: true, deleted: false`` when there is nothing to delete."""
    conversation_id = "conv_" + "0" * 48
    answer = _call(guarded, "DELETE", f"/v2/conversations/{conversation_id}", ALICE)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "conversation_id": conversation_id,
        "success": True,
        "deleted": False,
        "response": "Conversation not found",
    }


def test_info_takes_its_name_from_the_configuration(guarded: ServiceHandle) -> None:
    """lightspeed-stack's ``src/app/endpoints/info.py`` reports ``configuration.name``."""
    assert _call(guarded, "GET", "/v1/info", ALICE).json()["name"] == NAME


def test_unauthenticated_callers_get_401(guarded: ServiceHandle) -> None:
    assert _call(guarded, "GET", "/v1/conversations", {}).status_code == 401


def test_the_list_survives_a_restart(
    guarded: ServiceHandle, directory: Path, emulator: EmulatorHandle
) -> None:
    before = _call(guarded, "GET", "/v1/conversations", BOB).json()["conversations"]
    assert before
    guarded.process.terminate()
    guarded.process.wait(timeout=30)
    env = stack_environment(emulator, directory / "state")
    with start_service(_config(directory, emulator), env) as again:
        after = _call(again, "GET", "/v1/conversations", BOB).json()["conversations"]
        assert after == before
        one = after[0]["conversation_id"]
        history = _call(again, "GET", f"/v1/conversations/{one}", BOB).json()["chat_history"]
        assert history[0]["messages"][0] == {
            "content": "bob one",
            "type": "user",
            "referenced_documents": None,
        }

"""End-to-end: lightspeed-stack's feedback routes, stored in the service's own database.

A real service (library mode, ``api_key`` auth, two callers) against the emulator. Bodies are
compared with what lightspeed-stack's ``src/app/endpoints/feedback.py`` and its models
(``src/models/api/requests/feedback.py``) produce. Feedback lands in the conversation index's
SQLite file, one row per call with its owner; no route reads it back. (PostgreSQL: the same
rows, ``tests/e2e/test_conversation_index_stores.py``.)
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.emulator import EmulatorHandle
from support.service import ServiceHandle, service_config, stack_environment, start_service

pytestmark = pytest.mark.slow

ALICE = {"Authorization": "Bearer alice-key"}
BOB = {"Authorization": "Bearer bob-key"}


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("feedback") / "state"


@pytest.fixture(scope="module")
def served(state: Path, emulator: EmulatorHandle) -> Iterator[ServiceHandle]:
    auth = {"module": "api_key", "api_key": {"keys": {"alice": "alice-key", "bob": "bob-key"}}}
    extra = {"authentication": auth, "feedback": {"enabled": True}}
    path = service_config(state.parent, emulator, extra=extra)
    with start_service(path, stack_environment(emulator, state)) as handle:
        yield handle


def _call(
    service: ServiceHandle, method: str, path: str, who: dict[str, str], **kwargs: Any
) -> httpx.Response:
    return httpx.request(method, f"{service.url}{path}", headers=who, timeout=60, **kwargs)


def _conversation(service: ServiceHandle, who: dict[str, str]) -> str:
    body = {"query": "what is Kubernetes?", "generate_topic_summary": False}
    answer = _call(service, "POST", "/v1/query", who, json=body)
    assert answer.status_code == 200, answer.text
    conversation_id: str = answer.json()["conversation_id"]
    return conversation_id


def _feedback(conversation_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "conversation_id": conversation_id,
        "user_question": "what is Kubernetes?",
        "llm_response": "You said: what is Kubernetes?",
        **fields,
    }


def _stored(state: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(state / "conversations.sqlite3") as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM feedback ORDER BY created_at")]


def test_feedback_is_stored_with_its_owner(served: ServiceHandle, state: Path) -> None:
    conversation_id = _conversation(served, ALICE)
    body = _feedback(
        conversation_id,
        sentiment=-1,
        user_feedback="too vague",
        categories=["incorrect", "incomplete", "incorrect"],
    )
    answer = _call(served, "POST", "/v1/feedback", ALICE, json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"response": "feedback received"}
    positive = _feedback(conversation_id.removeprefix("conv_"), sentiment=1)
    assert _call(served, "POST", "/v1/feedback", ALICE, json=positive).status_code == 200

    rows = [row for row in _stored(state) if row["conversation_id"] == conversation_id]
    assert [(r["owner"], r["sentiment"]) for r in rows] == [("alice", -1), ("alice", 1)]
    assert json.loads(rows[0]["categories"]) == ["incorrect", "incomplete"]  # once each
    assert rows[0]["user_feedback"] == "too vague"
    assert rows[0]["user_question"] == "what is Kubernetes?"
    assert rows[1]["categories"] is None


def test_feedback_on_another_callers_or_an_unknown_conversation_is_404(
    served: ServiceHandle, state: Path
) -> None:
    """lightspeed-stack checks the conversation exists and is the caller's; another caller's
    conversation is "not found" here too (lightspeed-stack says 403: see the module docs)."""
    alices = _conversation(served, ALICE)
    before = len(_stored(state))
    for conversation_id in (alices, "conv_" + "0" * 48):
        body = _feedback(conversation_id, sentiment=1)
        answer = _call(served, "POST", "/v1/feedback", BOB, json=body)
        assert answer.status_code == 404, answer.text
        assert answer.json() == {
            "detail": {
                "response": "Conversation not found",
                "cause": f"Conversation with ID {conversation_id} does not exist",
            }
        }
    assert len(_stored(state)) == before


@pytest.mark.parametrize(
    ("fields", "loc", "message"),
    [
        (
            {},
            ["body"],
            "Value error, At least one form of feedback must be provided: "
            "'sentiment', 'user_feedback', or 'categories'",
        ),
        (
            {"sentiment": 0},
            ["body", "sentiment"],
            "Value error, Improper sentiment value of 0, needs to be -1 or 1",
        ),
        ({"categories": ["great"]}, ["body", "categories", 0], None),
        ({"user_feedback": "x" * 4097}, ["body", "user_feedback"], None),
    ],
)
def test_invalid_feedback_is_fastapis_422(
    served: ServiceHandle, fields: dict[str, Any], loc: list[Any], message: str | None
) -> None:
    """Messages of lightspeed-stack's ``FeedbackRequest`` validators, rendered by pydantic."""
    body = _feedback("conv_" + "1" * 48, **fields)
    answer = _call(served, "POST", "/v1/feedback", ALICE, json=body)
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["detail"]
    assert error["loc"] == loc
    if message is not None:
        assert error["msg"] == message


def test_malformed_conversation_id_is_lightspeeds_message(served: ServiceHandle) -> None:
    body = _feedback("nope", sentiment=1)
    (error,) = _call(served, "POST", "/v1/feedback", ALICE, json=body).json()["detail"]
    assert (error["loc"], error["msg"]) == (
        ["body", "conversation_id"],
        "Value error, Improper conversation ID nope",
    )


def test_status_can_be_read_and_turned_off_and_on(served: ServiceHandle, state: Path) -> None:
    """``GET``/``PUT /v1/feedback/status`` and the 403 while off, as lightspeed-stack's."""
    status = _call(served, "GET", "/v1/feedback/status", {})
    assert status.json() == {"functionality": "feedback", "status": {"enabled": True}}

    off = _call(served, "PUT", "/v1/feedback/status", ALICE, json={"status": False})
    assert off.status_code == 200, off.text
    change = off.json()["status"]
    assert {k: change[k] for k in ("previous_status", "updated_status", "updated_by")} == {
        "previous_status": True,
        "updated_status": False,
        "updated_by": "alice",
    }
    assert change["timestamp"]
    assert _call(served, "GET", "/v1/feedback/status", {}).json()["status"] == {"enabled": False}
    conversation_id = _conversation(served, ALICE)
    before = len(_stored(state))
    refused = _call(
        served, "POST", "/v1/feedback", ALICE, json=_feedback(conversation_id, sentiment=1)
    )
    assert refused.status_code == 403
    assert refused.json() == {
        "detail": {
            "response": "Storing feedback is disabled",
            "cause": "Storing feedback is disabled.",
        }
    }
    assert len(_stored(state)) == before

    on = _call(served, "PUT", "/v1/feedback/status", BOB, json={"status": True})
    assert on.json()["status"]["previous_status"] is False
    assert on.json()["status"]["updated_by"] == "bob"
    extra = _call(served, "PUT", "/v1/feedback/status", BOB, json={"enabled": True})
    assert extra.status_code == 422


def test_feedback_needs_authentication(served: ServiceHandle) -> None:
    body = _feedback("conv_" + "1" * 48, sentiment=1)
    assert _call(served, "POST", "/v1/feedback", {}, json=body).status_code == 401
    assert _call(served, "PUT", "/v1/feedback/status", {}, json={"status": True}).status_code == 401

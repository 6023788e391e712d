"""End-to-end: ``/v1/query`` and ``/v1/streaming_query`` keep lightspeed-stack's contract.

A real ``llama-entra serve`` (library mode, the installed backend) against the emulator, called
with httpx as a lightspeed-stack client would: every request field is accepted, attachments
reach the model, bad input is 422 with lightspeed's message, conversation ids in all three
forms, and the stream's ``turn_complete`` and ``end`` events. Errors found in the request never
reach Azure (the emulator's completion counter stays put).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from support.emulator import EmulatorHandle
from support.service import ServiceHandle

pytestmark = pytest.mark.slow


def _query(service: ServiceHandle, **fields: Any) -> httpx.Response:
    return httpx.post(f"{service.url}/v1/query", json=fields, timeout=60)


def _events(response: httpx.Response) -> list[dict[str, Any]]:
    return [
        json.loads(line.removeprefix("data: "))
        for line in response.text.splitlines()
        if line.startswith("data: ")
    ]


def test_query_accepts_every_lightspeed_field_and_attachments_reach_the_model(
    service: ServiceHandle, emulator: EmulatorHandle
) -> None:
    response = _query(
        service,
        query="what is wrong?",
        provider="azure",
        model=emulator.model,
        system_prompt="You are terse.",
        attachments=[
            {"attachment_type": "log", "content_type": "text/plain", "content": "OOMKilled"},
            {
                "attachment_type": "configuration",
                "content_type": "application/yaml",
                "content": "kind: Pod\nmetadata:\n  name: private-reg",
            },
        ],
        no_tools=True,
        generate_topic_summary=False,
        media_type="application/json",
        vector_store_ids=["ocp_docs"],
        shield_ids=["llama-guard"],
        solr={"fq": ["product:*openshift*"]},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    # The emulator echoes the last user message: the question and both attachments.
    assert body["response"].startswith("You said: what is wrong?")
    assert "OOMKilled" in body["response"] and "name: private-reg" in body["response"]
    assert body["model"] == f"azure/{emulator.model}"
    assert body["conversation_id"].startswith("conv_")
    for field, empty in [
        ("referenced_documents", []),
        ("truncated", False),
        ("available_quotas", {}),
        ("tool_calls", []),
        ("tool_results", []),
    ]:
        assert body[field] == empty, field


def _attachment(content_type: str, content: str = "text", kind: str = "log") -> dict[str, str]:
    return {"attachment_type": kind, "content_type": content_type, "content": content}


@pytest.mark.parametrize(
    ("attachment", "message"),
    [
        (_attachment("text/plain", kind="diary"), "Invalid attachment type"),
        (_attachment("image/png"), "Invalid attachment content type"),
        (_attachment("application/json", "{no"), "json"),
        (_attachment("application/yaml", "a: [b"), "yaml"),
        (_attachment("application/xml", "<a><b></a>"), "xml"),
        (
            _attachment("application/xml", '<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>'),
            "entity declarations",
        ),
        (_attachment("text/plain", ""), "content"),
    ],
)
def test_invalid_attachments_are_422_with_a_message_and_never_reach_azure(
    service: ServiceHandle, fresh_emulator: EmulatorHandle, attachment: dict[str, str], message: str
) -> None:
    response = _query(service, query="look", attachments=[attachment])
    assert response.status_code == 422, response.text
    cause = response.json()["detail"]["cause"]
    assert cause.startswith("attachments.0"), cause
    assert message.lower() in cause.lower(), cause
    assert fresh_emulator.counters()["completions"] == 0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"provider": "azure"}, "Model must be specified if provider is specified"),
        ({"model": "gpt-4o-mini"}, "Provider must be specified if model is specified"),
        ({"media_type": "text/html"}, "media_type must be either"),
        ({"no_tools": "sometimes"}, "no_tools"),
        ({"conversation_id": "not-an-id"}, "Improper conversation ID 'not-an-id'"),
        ({"conversation_id": "conv_" + "z" * 48}, "Improper conversation ID"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_lightspeed_validation_messages(
    service: ServiceHandle, fresh_emulator: EmulatorHandle, fields: dict[str, Any], message: str
) -> None:
    response = _query(service, query="hi", **fields)
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]["cause"]
    assert fresh_emulator.counters()["completions"] == 0


def test_unknown_model_or_provider_is_404_naming_it(
    service: ServiceHandle, fresh_emulator: EmulatorHandle
) -> None:
    model = _query(service, query="hi", provider="azure", model="no-such-model")
    assert model.status_code == 404
    assert model.json()["detail"] == {
        "response": "Model not found",
        "cause": "Model with ID azure/no-such-model does not exist",
    }
    provider = _query(service, query="hi", provider="openai", model="gpt-4o")
    assert provider.status_code == 404
    assert provider.json()["detail"]["response"] == "Provider not found"
    assert "openai" in provider.json()["detail"]["cause"]
    assert fresh_emulator.counters()["completions"] == 0


def test_conversation_ids_in_every_lightspeed_form(
    service: ServiceHandle, fresh_emulator: EmulatorHandle
) -> None:
    first = _query(service, query="remember 42", generate_topic_summary=False).json()
    conversation_id = first["conversation_id"]
    bare = conversation_id.removeprefix("conv_")
    again = _query(service, query="and now?", conversation_id=bare.upper())
    assert again.status_code == 200, again.text
    assert again.json()["conversation_id"] == conversation_id
    assert again.json()["input_tokens"] > first["input_tokens"]  # history came along
    before = fresh_emulator.counters()["completions"]
    for unknown in (str(uuid.uuid4()), uuid.uuid4().hex, "conv_" + "0" * 48, "0" * 48):
        response = _query(service, query="hi", conversation_id=unknown)
        assert response.status_code == 404, (unknown, response.text)
        assert response.json()["detail"]["response"] == "Conversation not found"
    assert fresh_emulator.counters()["completions"] == before  # Azure was never asked


def test_stream_sends_turn_complete_with_the_joined_tokens_then_end(
    service: ServiceHandle,
) -> None:
    response = httpx.post(
        f"{service.url}/v1/streaming_query",
        json={"query": "stream this to me please", "generate_topic_summary": False},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    events = _events(response)
    kinds = [event["event"] for event in events]
    assert kinds[0] == "start" and kinds[-2:] == ["turn_complete", "end"]
    assert set(kinds[1:-2]) == {"token"} and len(kinds) > 4
    tokens = "".join(e["data"]["token"] for e in events if e["event"] == "token")
    assert events[-2]["data"]["token"] == tokens == "You said: stream this to me please"
    end = events[-1]
    assert end["available_quotas"] == {}
    assert end["data"]["referenced_documents"] == []
    assert end["data"]["truncated"] is False
    assert end["data"]["output_tokens"] > 0
    assert events[0]["data"]["conversation_id"] == response.headers["x-conversation-id"]


def test_stream_as_plain_text(service: ServiceHandle) -> None:
    response = httpx.post(
        f"{service.url}/v1/streaming_query",
        json={"query": "plain please", "media_type": "text/plain"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "You said: plain please"
    assert response.headers["x-conversation-id"].startswith("conv_")


def test_stream_errors_before_the_first_chunk_are_plain_http_errors(
    service: ServiceHandle,
) -> None:
    response = httpx.post(
        f"{service.url}/v1/streaming_query", json={"query": "!status 429"}, timeout=60
    )
    assert response.status_code == 429
    assert response.json()["detail"]["cause"]

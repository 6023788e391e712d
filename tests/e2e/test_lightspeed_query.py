"""End-to-end: ``/v1/query`` and ``/v1/streaming_query`` keep lightspeed-stack's contract.

A real ``llama-entra serve`` (library mode, the installed backend) against the emulator, called
with httpx as a lightspeed-stack client would: every request field is accepted, attachments
(text and images) reach the model, bad input is FastAPI's 422 body with lightspeed's messages,
conversation ids in all three forms, and the stream's ``turn_complete`` and ``end`` events.
Errors found in the request never reach Azure (the emulator's completion counter stays put).
The expected bodies are what lightspeed-stack's code produces; each test names the file.
"""

from __future__ import annotations

import base64
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


# The smallest images of each format Azure takes (a 1x1 PNG, GIF; JPEG and WebP headers).
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)
GIF = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 16 + b"\xff\xd9"
WEBP = (
    b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00"
    b"\x2f\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00"
)


def _image(data: bytes, content_type: str = "image/png", kind: str = "image") -> dict[str, str]:
    return _attachment(content_type, base64.b64encode(data).decode(), kind)


def _value_error(message: str, loc: list[Any], given: Any) -> dict[str, Any]:
    """One entry of FastAPI's 422 ``detail`` for a model validator's ``ValueError``."""
    return {
        "type": "value_error",
        "loc": loc,
        "msg": f"Value error, {message}",
        "input": given,
        "ctx": {"error": {}},
    }


@pytest.mark.parametrize(
    ("attachment", "message"),
    [
        (_attachment("text/plain", kind="diary"), "Invalid attachment type"),
        (_attachment("image/svg+xml"), "Invalid attachment content type"),
        (_attachment("application/json", "{no"), "json"),
        (_attachment("application/yaml", "a: [b"), "yaml"),
        (_attachment("application/xml", "<a><b></a>"), "xml"),
        (
            _attachment("application/xml", '<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>'),
            "entity declarations",
        ),
        (_attachment("text/plain", ""), "at least 1 character"),
    ],
)
def test_invalid_attachments_are_422_with_a_message_and_never_reach_azure(
    service: ServiceHandle, fresh_emulator: EmulatorHandle, attachment: dict[str, str], message: str
) -> None:
    response = _query(service, query="look", attachments=[attachment])
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"][:3] == ["body", "attachments", 0], error
    assert message.lower() in error["msg"].lower(), error
    assert fresh_emulator.counters()["completions"] == 0


@pytest.mark.parametrize(
    ("attachment", "message"),
    [
        (
            _image(PNG, kind="configuration"),
            "attachment_type and content_type are inconsistent: "
            "attachment_type='configuration', content_type='image/png'",
        ),
        (
            _attachment("text/plain", "some text", kind="image"),
            "attachment_type and content_type are inconsistent: "
            "attachment_type='image', content_type='text/plain'",
        ),
        (
            _attachment("image/png", "not-valid-base64!!!", kind="image"),
            "Invalid base64 content for image attachment: Only base64 data is allowed",
        ),
        (
            _attachment("image/png", "dGhpcyBpcyBub3QgYW4gaW1hZ2UgYXQgYWxs", kind="image"),
            "Image content does not match declared content_type 'image/png': invalid image data",
        ),
        (
            _image(PNG, "image/jpeg"),
            "Image content does not match declared content_type 'image/jpeg': invalid image data",
        ),
    ],
)
def test_invalid_images_are_lightspeeds_422(
    service: ServiceHandle, fresh_emulator: EmulatorHandle, attachment: dict[str, str], message: str
) -> None:
    """Messages and body as lightspeed-stack's ``src/models/common/query.py`` (Attachment's
    ``validate_image_attachment``) and FastAPI's default handler produce them."""
    response = _query(service, query="Describe this image", attachments=[attachment])
    assert response.status_code == 422, response.text
    assert response.json() == {
        "detail": [_value_error(message, ["body", "attachments", 0], attachment)]
    }
    assert fresh_emulator.counters()["completions"] == 0


@pytest.mark.parametrize(
    ("data", "content_type"),
    [(PNG, "image/png"), (JPEG, "image/jpeg"), (GIF, "image/gif"), (WEBP, "image/webp")],
)
def test_images_reach_the_model_as_image_input(
    service: ServiceHandle, data: bytes, content_type: str
) -> None:
    """lightspeed-stack's ``src/app/endpoints/query.py`` sends image attachments as image
    input; the emulator describes each image part it received, as its reply shows."""
    response = _query(
        service,
        query="Describe this image",
        attachments=[
            _image(data, content_type),
            _attachment("text/plain", "taken at noon"),
        ],
        generate_topic_summary=False,
    )
    assert response.status_code == 200, response.text
    answer = response.json()["response"]
    assert "Describe this image" in answer and "taken at noon" in answer
    assert f"[image: {content_type}, {len(data)} bytes]" in answer


def test_streamed_query_sends_images_too(service: ServiceHandle) -> None:
    """As lightspeed-stack's ``src/app/endpoints/streaming_query.py``: same attachments."""
    response = httpx.post(
        f"{service.url}/v1/streaming_query",
        json={
            "query": "What is in it?",
            "attachments": [_image(PNG), _image(GIF, "image/gif")],
            "generate_topic_summary": False,
        },
        timeout=60,
    )
    assert response.status_code == 200, response.text
    (complete,) = [e for e in _events(response) if e["event"] == "turn_complete"]
    answer = complete["data"]["token"]
    assert f"[image: image/png, {len(PNG)} bytes]" in answer
    assert f"[image: image/gif, {len(GIF)} bytes]" in answer


def test_missing_field_is_fastapis_native_422(
    service: ServiceHandle, fresh_emulator: EmulatorHandle
) -> None:
    """lightspeed-stack answers validation failures with FastAPI's default handler (it installs
    none of its own: ``src/app/main.py``), so clients read ``loc`` and ``msg``."""
    response = _query(service, question="hi")
    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "type": "missing",
                "loc": ["body", "query"],
                "msg": "Field required",
                "input": {"question": "hi"},
            },
            {
                "type": "extra_forbidden",
                "loc": ["body", "question"],
                "msg": "Extra inputs are not permitted",
                "input": "hi",
            },
        ]
    }
    assert fresh_emulator.counters()["completions"] == 0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"provider": "azure"}, "Model must be specified if provider is specified"),
        ({"model": "gpt-4o-mini"}, "Provider must be specified if model is specified"),
        (
            {"media_type": "text/html"},
            "media_type must be either 'application/json' or 'text/plain'",
        ),
    ],
)
def test_model_validator_messages_as_pydantic_renders_them(
    service: ServiceHandle, fresh_emulator: EmulatorHandle, fields: dict[str, Any], message: str
) -> None:
    """Messages of lightspeed-stack's ``src/models/api/requests/query.py`` (QueryRequest's
    ``validate_provider_and_model``, ``validate_media_type``), rendered by pydantic."""
    response = _query(service, query="hi", **fields)
    assert response.status_code == 422
    given = {"query": "hi", **fields}
    assert response.json() == {"detail": [_value_error(message, ["body"], given)]}
    assert fresh_emulator.counters()["completions"] == 0


@pytest.mark.parametrize(
    ("fields", "loc", "message"),
    [
        (
            {"no_tools": "sometimes"},
            ["body", "no_tools"],
            "Input should be a valid boolean, unable to interpret input",
        ),
        (
            {"conversation_id": "not-an-id"},
            ["body", "conversation_id"],
            "Value error, Improper conversation ID 'not-an-id'",
        ),
        (
            {"conversation_id": "conv_" + "z" * 48},
            ["body", "conversation_id"],
            "Value error, Improper conversation ID 'conv_" + "z" * 48 + "'",
        ),
        ({"surprise": 1}, ["body", "surprise"], "Extra inputs are not permitted"),
    ],
)
def test_field_errors_name_the_field(
    service: ServiceHandle,
    fresh_emulator: EmulatorHandle,
    fields: dict[str, Any],
    loc: list[str],
    message: str,
) -> None:
    """``loc`` and ``msg`` as lightspeed-stack's QueryRequest (``check_uuid``) gives them."""
    response = _query(service, query="hi", **fields)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert (error["loc"], error["msg"]) == (loc, message)
    assert fresh_emulator.counters()["completions"] == 0


def test_unknown_model_or_provider_is_404_naming_the_model(
    service: ServiceHandle, fresh_emulator: EmulatorHandle
) -> None:
    """lightspeed-stack checks ``provider/model`` is configured and otherwise answers
    ``NotFoundResponse(resource="model", resource_id=model)``
    (``src/models/api/responses/error/not_found.py``), whichever of the two is unknown."""
    model = _query(service, query="hi", provider="azure", model="no-such-model")
    assert model.status_code == 404
    assert model.json() == {
        "detail": {
            "response": "Model not found",
            "cause": "Model with ID no-such-model does not exist",
        }
    }
    provider = _query(service, query="hi", provider="openai", model="gpt-4o")
    assert provider.status_code == 404
    assert provider.json() == {
        "detail": {"response": "Model not found", "cause": "Model with ID gpt-4o does not exist"}
    }
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

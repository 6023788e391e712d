"""Unit tests: the streaming router's event sequence, including an error after the start."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from typing import Any

from llama_entra.app.routers.streaming import _Stream
from llama_entra.app.schemas import QueryRequest
from llama_entra.app.turns import PreparedTurn
from llama_entra.errors import UpstreamError
from llama_entra.stack import ModelInfo

_MODEL = ModelInfo("azure/m", "azure", "m", "llm", azure=True)


def _chunk(text: str) -> dict[str, Any]:
    return {"choices": [{"delta": {"content": text}}]}


async def _failing_after_one() -> AsyncGenerator[dict[str, Any], None]:
    yield _chunk(" world")
    raise UpstreamError("Azure went away", status=500)


def _events(stream: _Stream) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:
        return [json.loads(e["data"]) async for e in stream.events("req-1")]

    return asyncio.run(collect())


def test_error_after_the_first_token_is_an_error_event_with_status_code() -> None:
    turn = PreparedTurn(QueryRequest(query="hi"), "anonymous", _MODEL, "conv_x", [])
    stream = _Stream(None, None, None, turn, _chunk("hello"), _failing_after_one())  # type: ignore[arg-type]
    events = _events(stream)
    assert [e["event"] for e in events] == ["start", "token", "token", "error"]
    assert events[0]["data"] == {"conversation_id": "conv_x", "request_id": "req-1"}
    assert events[-1]["data"] == {
        "status_code": 502,
        "response": "Azure OpenAI or Llama Stack error",
        "cause": "Azure went away",
    }


def test_text_stream_reports_an_error_as_a_status_line() -> None:
    turn = PreparedTurn(QueryRequest(query="hi"), "anonymous", _MODEL, "conv_x", [])
    stream = _Stream(None, None, None, turn, _chunk("hello"), _failing_after_one())  # type: ignore[arg-type]

    async def collect() -> str:
        return "".join([text async for text in stream.text()])

    assert asyncio.run(collect()) == (
        "hello world" + "Status: 502 - Azure OpenAI or Llama Stack error - Azure went away"
    )

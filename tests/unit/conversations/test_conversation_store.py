"""Unit tests: conversation ids in lightspeed's forms, and turns rebuilt from stored items."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from llama_entra.backends.conversation_ids import llama_stack_id, valid_conversation_id
from llama_entra.conversations import ConversationStore
from llama_entra.errors import InvalidInputError

_HEX = "0123456789abcdef" * 3


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (f"conv_{_HEX}", f"conv_{_HEX}"),
        (_HEX, f"conv_{_HEX}"),
        (_HEX.upper(), f"conv_{_HEX}"),
        (str(uuid.UUID(int=7)), None),
        (uuid.UUID(int=7).hex, None),
    ],
)
def test_valid_ids_map_to_llama_stack_ids(raw: str, expected: str | None) -> None:
    assert valid_conversation_id(raw)
    assert llama_stack_id(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "conv_", f"conv_{_HEX}0", _HEX[:-1], f"{{{uuid.UUID(int=7)}}}", "../etc"]
)
def test_malformed_ids_are_422_in_a_body_and_400_in_a_path(raw: str) -> None:
    assert not valid_conversation_id(raw)
    with pytest.raises(InvalidInputError) as body:
        llama_stack_id(raw)
    assert body.value.status == 422 and "Improper conversation ID" in body.value.cause
    with pytest.raises(InvalidInputError) as path:
        llama_stack_id(raw, in_path=True)
    assert path.value.status == 400 and path.value.response == "Invalid conversation ID format"


class _Items:
    """Only ``conversation_items`` is used by ``turns``."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    async def conversation_items(self, conversation_id: str) -> list[dict[str, Any]]:
        return self.items


def _message(role: str, text: str) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": [{"type": "output_text", "text": text}]}


def test_turns_pair_answers_with_questions_even_when_interleaved() -> None:
    # llama-stack 0.7.3 orders items by a per-second timestamp: two quick turns interleave.
    items = [
        _message("user", "q1"),
        _message("user", "q2"),
        _message("assistant", "a1"),
        {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": '{"x": 1}'},
        {"type": "function_call_output", "call_id": "c1", "output": "found"},
        _message("assistant", "a2"),
    ]
    holder = SimpleNamespace(client=_Items(items))  # the store reads the holder's client
    store = ConversationStore(holder, None)  # type: ignore[arg-type]
    turns = asyncio.run(store.turns("conv_x"))
    assert [[m["content"] for m in t.messages] for t in turns] == [["q1", "a1"], ["q2", "a2"]]
    assert turns[1].tool_calls == [
        {"id": "c1", "name": "lookup", "args": {"x": 1}, "type": "tool_call"}
    ]
    assert turns[1].tool_results[0]["content"] == "found"
    history = asyncio.run(store.history("conv_x"))
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]

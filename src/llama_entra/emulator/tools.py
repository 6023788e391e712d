"""Tool calling in the emulator's chat completions, so agent loops (Responses ``file_search``) run.

Deterministic, like the rest of the emulator:

- A user message ``!call QUERY`` in a request that offers function tools makes the model call the
  first offered tool with ``{"query": "QUERY"}`` (``finish_reason: tool_calls``), plain or
  streamed the way OpenAI streams tool calls (name first, then the arguments).
- When the last message is a tool result, the reply repeats it: ``Tool said: <result text>``, so
  a test can see what the tool returned reach the caller.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["ToolCall", "tool_call_for", "tool_result_words"]

_CALL_PROMPT = re.compile(r"^!call\s+(.+)", re.DOTALL)
_MAX_RESULT_WORDS = 400


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The tool call the emulated model makes."""

    id: str
    name: str
    arguments: str

    def as_message_call(self) -> dict[str, Any]:
        """The call in an assistant message (non-streaming answer)."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }

    def stream_deltas(self) -> list[dict[str, Any]]:
        """The call as OpenAI streams it: id and name first, then the arguments."""
        head = {
            "index": 0,
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": ""},
        }
        return [
            {"role": "assistant", "content": None, "tool_calls": [head]},
            {"tool_calls": [{"index": 0, "function": {"arguments": self.arguments}}]},
        ]


def tool_call_for(body: dict[str, Any], prompt: str, last_role: str | None) -> ToolCall | None:
    """The call to make for ``!call QUERY`` when the request offers a function tool."""
    match = _CALL_PROMPT.match(prompt)
    if last_role != "user" or match is None:
        return None
    for tool in body.get("tools") or []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            query = match.group(1).strip()
            digest = hashlib.sha256(f"{function['name']}:{query}".encode()).hexdigest()[:24]
            arguments = json.dumps({"query": query})
            return ToolCall(id=f"call_{digest}", name=function["name"], arguments=arguments)
    return None


def tool_result_words(message: dict[str, Any], text: str) -> list[str] | None:
    """The reply to a tool result (the last message), as words; None for other messages."""
    if message.get("role") != "tool":
        return None
    return ["Tool", "said:", *(text.split() or ["nothing."])][:_MAX_RESULT_WORDS]

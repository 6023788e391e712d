"""A streamed chat completion in Azure OpenAI's chunk shapes (server-sent events).

In order, as Azure sends them with its default content filter:

1. ``{"id": "", "object": "", "created": 0, "model": "", "choices": [],
   "prompt_filter_results": [...]}``: the prompt's annotations, before any choice;
2. the role chunk (or the tool call's first delta), ``content_filter_results: {}``;
3. a chunk per word, each with the choice's ``content_filter_results`` (all safe);
4. the end: ``delta: {}`` with the finish reason and ``content_filter_results: {}``; or, when
   the output was filtered, the blocking chunk: ``finish_reason: "content_filter"``, **no**
   ``delta``, and ``content_filter_results`` naming the category;
5. the usage chunk (``choices: []``) when ``stream_options.include_usage`` asked for it;
6. ``data: [DONE]``.

With the fault ``break_streams_after: N`` the connection drops after N content chunks, with no
end, as when a network or a resource fails mid-answer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from llama_entra.emulator.content_filter import completion_results, prompt_filter_results
from llama_entra.emulator.state import EmulatorState

__all__ = ["StreamBrokenError", "StreamedReply", "chat_stream"]


class StreamBrokenError(ConnectionError):
    """The fault ``break_streams_after``: the connection drops mid-stream, as a network can."""


@dataclass(frozen=True, slots=True)
class StreamedReply:
    """What a streamed completion says: words, how it ends, and its opening deltas."""

    identity: str
    model: str
    words: list[str]
    finish: str
    usage: dict[str, int] | None = None
    deltas: list[dict[str, Any]] | None = None
    filtered: str | None = None  # the category that cut the output


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


async def chat_stream(state: EmulatorState, reply: StreamedReply) -> AsyncIterator[bytes]:
    """The events of ``reply``, paced by the stream faults (``stream_delay`` and friends)."""
    created = int(state.clock())

    def chunk(choice: dict[str, Any]) -> bytes:
        return _event(
            {
                "id": reply.identity,
                "object": "chat.completion.chunk",
                "created": created,
                "model": reply.model,
                "choices": [{"index": 0, **choice}],
                "system_fingerprint": "fp_emulator",
            }
        )

    def delta(content: dict[str, Any], results: dict[str, Any]) -> bytes:
        return chunk(
            {
                "delta": content,
                "finish_reason": None,
                "logprobs": None,
                "content_filter_results": results,
            }
        )

    if state.faults.first_chunk_delay:  # a model's time to first token
        await asyncio.sleep(state.faults.first_chunk_delay)
    empty = {"id": "", "object": "", "created": 0, "model": "", "choices": []}
    yield _event({**empty, "prompt_filter_results": prompt_filter_results()})
    for opening in reply.deltas or [{"role": "assistant", "content": ""}]:
        yield delta(opening, {})
    safe = completion_results()
    for index, word in enumerate(reply.words):
        if index == state.faults.break_streams_after:
            raise StreamBrokenError(f"stream dropped after {index} chunks (break_streams_after)")
        if state.faults.stream_delay:
            await asyncio.sleep(state.faults.stream_delay)
        yield delta({"content": word if index == 0 else f" {word}"}, safe)
    if reply.filtered is not None:
        results = completion_results(reply.filtered)
        yield chunk({"finish_reason": "content_filter", "content_filter_results": results})
    else:
        end: dict[str, Any] = {"delta": {}, "finish_reason": reply.finish, "logprobs": None}
        yield chunk({**end, "content_filter_results": {}})
    if reply.usage is not None:
        payload = {
            "id": reply.identity,
            "object": "chat.completion.chunk",
            "created": created,
            "model": reply.model,
            "choices": [],
            "usage": reply.usage,
        }
        yield _event(payload)
    yield b"data: [DONE]\n\n"

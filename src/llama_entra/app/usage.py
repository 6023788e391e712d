"""Counting a streamed answer's tokens against the quotas on the OpenAI-compatible routes.

A chat completion stream reports its usage only when asked (``stream_options.include_usage``):
with quotas on, it is always asked for, and ``StreamUsage.relay`` keeps what the caller did not
ask for out of its stream (the usage-only last chunk, and ``usage`` on the others), so the
caller's stream is the one it asked for. A Responses stream always reports usage in its
``response.completed`` event. ``spend`` counts the usage seen once the stream has ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llama_entra.app.turns import usage_tokens
from llama_entra.quotas import QuotaLimiter

__all__ = ["StreamUsage", "ask_for_usage", "chat_tokens", "response_tokens"]


def chat_tokens(usage: Any) -> int:
    """Prompt plus completion tokens of a chat completion's ``usage`` (0 when absent)."""
    return sum(usage_tokens(usage))


def response_tokens(usage: Any) -> int:
    """Input plus output tokens of a Responses API ``usage`` (0 when absent)."""
    if not isinstance(usage, dict):
        return 0
    return int(usage.get("input_tokens") or 0) + int(usage.get("output_tokens") or 0)


def ask_for_usage(params: dict[str, Any]) -> bool:
    """Make a chat completion stream report its usage; whether the caller asked for it.

    ``stream_options`` that is not an object is left for Llama Stack to refuse as it is.
    """
    options = params.get("stream_options")
    if options is not None and not isinstance(options, dict):
        return True
    asked = bool((options or {}).get("include_usage"))
    params["stream_options"] = {**(options or {}), "include_usage": True}
    return asked


@dataclass
class StreamUsage:
    """The usage one stream reported, to be spent from ``user_id``'s quotas when it ends."""

    quotas: QuotaLimiter
    user_id: str
    caller_asked: bool = True
    tokens: int = 0

    def relay(self, chunk: dict[str, Any]) -> dict[str, Any] | None:
        """``chunk`` as the caller should see it (None: not at all); notes its usage."""
        usage = chunk.get("usage")
        if usage is None:
            return chunk
        self.tokens = chat_tokens(usage)
        if self.caller_asked:
            return chunk
        if not chunk.get("choices"):
            return None
        return {**chunk, "usage": None}

    def event(self, event: dict[str, Any]) -> None:
        """Note the usage of a Responses stream's ``response.completed`` event."""
        if event.get("type") == "response.completed":
            self.tokens = response_tokens((event.get("response") or {}).get("usage"))

    async def spend(self) -> None:
        """Count the usage seen against the quotas."""
        await self.quotas.spend(self.user_id, self.tokens)

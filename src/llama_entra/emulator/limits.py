"""Per-deployment quota: requests and tokens per minute, and the context window.

Azure OpenAI admits a call against its deployment's rate limits before the model runs, from an
*estimate* of the tokens the call may use: the prompt's tokens plus ``max_tokens``, whatever the
model will really write. The emulator does the same:

- **Token estimate.** One word (whitespace-separated) of message text is one token, at least one
  per message: the same count the emulator reports as ``usage.prompt_tokens``. The
  tokens-per-minute cost of a call is that estimate plus the requested ``max_tokens``
  (``max_completion_tokens``, ``max_output_tokens``), or ``DEFAULT_COMPLETION_RESERVATION``
  when the call names none (Azure reserves a large output then). The context window counts the
  prompt estimate plus the requested ``max_tokens`` only (0 when none is named), as OpenAI's
  ``context_length_exceeded`` message reports it.
- **Window.** A sliding 60 s window per deployment. A call is admitted when, counting it, the
  calls and estimated tokens of the last 60 s stay within the limits; only admitted calls use
  quota. A refused call waits until enough of the window expires to make room for it
  (``Throttle.retry_after``). ``None`` means no limit.

Pure logic with the clock passed in (``now``), so tests move time instead of sleeping.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DEFAULT_COMPLETION_RESERVATION",
    "DEFAULT_CONTEXT_WINDOW",
    "NOMINAL_REQUESTS",
    "NOMINAL_TOKENS",
    "WINDOW_SECONDS",
    "CallCost",
    "DeploymentLimits",
    "Throttle",
    "UsageWindow",
    "estimate_tokens",
]

WINDOW_SECONDS = 60.0
# GPT-4.1's window, the largest Azure OpenAI chat model's: big enough for any body the tests
# send (the proxy's 1,000,000-word upload); ``--context-window gpt-4o-mini=128000`` is that
# model's real one.
DEFAULT_CONTEXT_WINDOW = 1_047_576
DEFAULT_COMPLETION_RESERVATION = 4096
# What x-ratelimit-remaining-* count down from when a deployment has no limit set.
NOMINAL_REQUESTS = 1_000_000
NOMINAL_TOKENS = 100_000_000


def estimate_tokens(texts: list[str]) -> int:
    """Prompt tokens of ``texts`` (one per message): a word each, at least one per text."""
    return sum(len(text.split()) or 1 for text in texts)


@dataclass(frozen=True, slots=True)
class DeploymentLimits:
    """A deployment's quota; ``None`` rate limits are unlimited."""

    rpm: int | None = None
    tpm: int | None = None
    context_window: int = DEFAULT_CONTEXT_WINDOW


@dataclass(frozen=True, slots=True)
class CallCost:
    """What one call asks of its deployment: estimated prompt tokens and requested output."""

    prompt_tokens: int
    max_tokens: int | None = None

    @property
    def rate_tokens(self) -> int:
        """Tokens the call counts against the tokens-per-minute limit."""
        reserved = DEFAULT_COMPLETION_RESERVATION if self.max_tokens is None else self.max_tokens
        return self.prompt_tokens + reserved

    @property
    def completion_tokens(self) -> int:
        """Output tokens the call requested (0 when it named no limit)."""
        return self.max_tokens or 0

    def exceeds(self, context_window: int) -> bool:
        """True when prompt and requested output do not fit ``context_window``."""
        return self.prompt_tokens + self.completion_tokens > context_window


@dataclass(frozen=True, slots=True)
class Throttle:
    """A refused call: which limit (``call`` = requests, ``token`` = tokens) and for how long."""

    limit: Literal["call", "token"]
    retry_after: float

    @property
    def retry_after_seconds(self) -> int:
        """``retry-after``: whole seconds, rounded up, at least 1."""
        return max(1, math.ceil(self.retry_after))

    @property
    def retry_after_ms(self) -> int:
        """``retry-after-ms``: milliseconds, rounded up, at least 1."""
        return max(1, math.ceil(self.retry_after * 1000))


class UsageWindow:
    """Calls and estimated tokens a deployment admitted in the last ``WINDOW_SECONDS``."""

    def __init__(self) -> None:
        self._entries: collections.deque[tuple[float, int]] = collections.deque()
        self._tokens = 0

    def _expire(self, now: float) -> None:
        while self._entries and self._entries[0][0] <= now - WINDOW_SECONDS:
            _, tokens = self._entries.popleft()
            self._tokens -= tokens

    def usage(self, now: float) -> tuple[int, int]:
        """Calls and tokens counted in the window at ``now``."""
        self._expire(now)
        return len(self._entries), self._tokens

    def admit(self, now: float, tokens: int, limits: DeploymentLimits) -> Throttle | None:
        """Count a call of ``tokens`` and return None, or refuse it (counting nothing)."""
        self._expire(now)
        if limits.rpm is not None and len(self._entries) + 1 > limits.rpm:
            # Room for one more call once all but rpm - 1 of the counted calls expired.
            return Throttle("call", self._wait(now, len(self._entries) - limits.rpm))
        if limits.tpm is not None and self._tokens + tokens > limits.tpm:
            excess, freed = self._tokens + tokens - limits.tpm, 0
            for index, (_, counted) in enumerate(self._entries):
                freed += counted
                if freed >= excess:
                    return Throttle("token", self._wait(now, index))
            return Throttle("token", WINDOW_SECONDS)  # more than the limit on its own
        self._entries.append((now, tokens))
        self._tokens += tokens
        return None

    def _wait(self, now: float, index: int) -> float:
        """Seconds until the entry at ``index`` (and all before it) leaves the window."""
        if not 0 <= index < len(self._entries):
            return WINDOW_SECONDS
        return max(0.0, self._entries[index][0] + WINDOW_SECONDS - now)

    def remaining(self, now: float, limits: DeploymentLimits) -> tuple[int, int]:
        """``x-ratelimit-remaining-requests`` and ``-tokens`` (nominal when unlimited)."""
        calls, tokens = self.usage(now)
        requests_limit = NOMINAL_REQUESTS if limits.rpm is None else limits.rpm
        tokens_limit = NOMINAL_TOKENS if limits.tpm is None else limits.tpm
        return max(0, requests_limit - calls), max(0, tokens_limit - tokens)

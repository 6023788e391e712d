"""The emulator's content filter: Azure OpenAI's annotations, blocked prompts, cut completions.

Trigger words, in the last user message (anywhere in it):

- ``!filter-prompt [CATEGORY]``: the prompt is blocked before the model runs: 400 with
  ``code: "content_filter"``, ``param: "prompt"`` and Azure's ``innererror``
  (``ResponsibleAIPolicyViolation``) naming the category that fired. CATEGORY is one of
  ``hate``, ``jailbreak``, ``self_harm``, ``sexual``, ``violence`` (default ``jailbreak``,
  reported as ``{"filtered": true, "detected": true}``; the others as
  ``{"filtered": true, "severity": "high"}``).
- ``!filter-completion [CATEGORY]``: the model's output is cut: 200 with
  ``finish_reason: "content_filter"``, the reply as far as it got (everything before the word
  that holds the trigger) and the choice's ``content_filter_results`` naming the category
  (``hate``, ``self_harm``, ``sexual`` or ``violence``; default ``violence``).

Every other chat completion carries Azure's all-safe annotations: top-level
``prompt_filter_results`` and per-choice ``content_filter_results``; ``chat_stream`` shows how
they appear in a stream.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "COMPLETION_CATEGORIES",
    "PROMPT_CATEGORIES",
    "blocked_prompt_body",
    "completion_results",
    "completion_trigger",
    "cut_reply",
    "prompt_filter_results",
    "prompt_trigger",
]

PROMPT_CATEGORIES = ("hate", "jailbreak", "self_harm", "sexual", "violence")
COMPLETION_CATEGORIES = ("hate", "self_harm", "sexual", "violence")
_PROMPT_TRIGGER = re.compile(r"!filter-prompt(?:\s+(\w+))?")
_COMPLETION_TRIGGER = re.compile(r"!filter-completion(?:\s+(\w+))?")
_COMPLETION_MARK = "!filter-completion"
_POLICY_URL = "https://go.microsoft.com/fwlink/?linkid=2198766"


def _trigger(pattern: re.Pattern[str], text: str, allowed: tuple[str, ...], default: str) -> str:
    match = pattern.search(text)
    if match is None:
        return ""
    category = match.group(1)
    return category if category in allowed else default


def prompt_trigger(text: str) -> str | None:
    """The category a ``!filter-prompt`` in ``text`` blocks, or None."""
    return _trigger(_PROMPT_TRIGGER, text, PROMPT_CATEGORIES, "jailbreak") or None


def completion_trigger(text: str) -> str | None:
    """The category a ``!filter-completion`` in ``text`` cuts the output for, or None."""
    return _trigger(_COMPLETION_TRIGGER, text, COMPLETION_CATEGORIES, "violence") or None


def _verdict(category: str, fired: bool) -> dict[str, Any]:
    if category == "jailbreak":
        return {"filtered": fired, "detected": fired}
    return {"filtered": fired, "severity": "high" if fired else "safe"}


def _results(categories: tuple[str, ...], fired: str | None) -> dict[str, Any]:
    return {category: _verdict(category, category == fired) for category in categories}


def prompt_filter_results(fired: str | None = None) -> list[dict[str, Any]]:
    """Top-level ``prompt_filter_results`` of a completion (all safe unless ``fired``)."""
    return [{"prompt_index": 0, "content_filter_results": _results(PROMPT_CATEGORIES, fired)}]


def completion_results(fired: str | None = None) -> dict[str, Any]:
    """A choice's ``content_filter_results`` (all safe unless ``fired``)."""
    return _results(COMPLETION_CATEGORIES, fired)


def blocked_prompt_body(category: str) -> dict[str, Any]:
    """Azure's 400 body for a prompt its content filter blocked."""
    return {
        "error": {
            "message": "The response was filtered due to the prompt triggering Azure OpenAI's "
            "content management policy. Please modify your prompt and retry. To learn more "
            f"about our content filtering policies please read our documentation: {_POLICY_URL}",
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": _results(PROMPT_CATEGORIES, category),
            },
        }
    }


def cut_reply(words: list[str]) -> list[str]:
    """The reply as far as it got: the words before the one that holds the trigger."""
    for index, word in enumerate(words):
        if _COMPLETION_MARK in word:
            return words[:index]
    return words

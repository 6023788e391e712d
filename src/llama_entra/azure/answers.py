"""Azure OpenAI's refusals, read from wherever they reach llama-entra.

In library mode Azure's answer arrives as the OpenAI SDK's exception, with Azure's error object
(``exc.body``) and headers (``exc.response.headers``). From a Llama Stack server only text
survives: the server answers with the status and ``str(exc)`` of the SDK's exception, which is
``Error code: 429 - {'error': {...}}``; Azure's error object is read back from that text, and
the wait from Azure's message ("Please retry after N seconds"). ``classify_azure_error`` turns
what was found into the error that keeps Azure's meaning: ``AzureThrottledError`` (429),
``ContentFilterError`` (400 ``content_filter``), ``ContextLengthError`` (400
``context_length_exceeded``).
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from llama_entra.errors import (
    AzureThrottledError,
    ContentFilterError,
    ContextLengthError,
    UpstreamError,
)

__all__ = [
    "RATE_LIMIT_HEADERS",
    "azure_error_object",
    "caller_headers",
    "classify_azure_error",
    "retry_after_seconds",
]

# Azure's headers that tell a caller how much of its quota is left (on every answer).
RATE_LIMIT_HEADERS = ("x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens")
_WAIT_IN_TEXT = re.compile(r"retry after (\d+) seconds?", re.IGNORECASE)
# How the OpenAI SDK words an error (``str(exc)``), which a Llama Stack server answers with.
_SDK_PREFIX = re.compile(r"^Error code: \d{3} - ")
# Azure's messages for a 429, a blocked prompt and a prompt over the context window.
_THROTTLED = re.compile(r"exceeded .*rate limit.*retry after \d+ seconds?", re.IGNORECASE)
_FILTERED_PROMPT = "triggering Azure OpenAI's content management policy"
_CONTEXT_EXCEEDED = re.compile(
    r"maximum context length is \d+ tokens|exceeds the context window", re.IGNORECASE
)
_ERROR_OBJECT_START = re.compile(r"""\{\s*["']error["']\s*:""")


def retry_after_seconds(headers: Mapping[str, str]) -> int | None:
    """Azure's wait in whole seconds: the larger of ``retry-after-ms`` rounded up and
    ``retry-after``; None when neither header is there (or readable)."""
    waits: list[int] = []
    milliseconds = _number(headers.get("retry-after-ms"))
    if milliseconds is not None:
        waits.append(math.ceil(milliseconds / 1000))
    seconds = _number(headers.get("retry-after"))
    if seconds is not None:
        waits.append(math.ceil(seconds))
    return max(waits) if waits else None


def caller_headers(headers: Mapping[str, str], *, retry_after: int | None = None) -> dict[str, str]:
    """The headers of Azure's answer a caller should see: the remaining quota, and the wait."""
    passed = {name: headers[name] for name in RATE_LIMIT_HEADERS if name in headers}
    if retry_after is not None:
        passed["Retry-After"] = str(retry_after)
    return passed


def azure_error_object(body: object = None, text: str = "") -> dict[str, Any]:
    """Azure's error object (``{"code", "message", "param", "innererror", ...}``) from a parsed
    body (``{"error": {...}}``, or the object itself as the OpenAI SDK keeps it), else from
    ``text`` that quotes it; empty when neither holds one."""
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and "code" in inner:
            return dict(inner)
    return _error_object_in(text)


def classify_azure_error(
    status: int,
    message: str,
    *,
    body: object = None,
    headers: Mapping[str, str] | None = None,
) -> UpstreamError | None:
    """The error that keeps the meaning of Azure's ``status`` answer, or None for any other."""
    if status == 500:
        # Llama Stack's Responses implementation answers any provider error as a 500 that keeps
        # Azure's message: the message alone tells what Azure said.
        status = _status_in_message(message)
    if status not in (400, 429):
        return None
    headers = headers or {}
    error = azure_error_object(body, message)
    azure_message = str(error.get("message") or _SDK_PREFIX.sub("", message))
    if status == 429:
        # Azure's 429 object is always this; a server may have kept only its message.
        error = error or {"code": "429", "message": azure_message}
        exact = _exact_wait(headers)
        wait = retry_after_seconds(headers)
        if wait is None and (found := _WAIT_IN_TEXT.search(azure_message)) is not None:
            wait = int(found.group(1))
        return AzureThrottledError(
            azure_message,
            retry_after=wait,
            wait=exact,
            azure_error=error,
            headers=caller_headers(headers, retry_after=wait),
        )
    error = error or _error_object_from_message(azure_message)
    code = error.get("code")
    if code == "content_filter":
        return ContentFilterError(
            azure_message, status=400, code="content_filter", azure_error=error
        )
    if code == "context_length_exceeded":
        return ContextLengthError(
            azure_message, status=400, code="context_length_exceeded", azure_error=error
        )
    return None


def _error_object_from_message(message: str) -> dict[str, Any]:
    """Azure's error object rebuilt from its message alone, as far as the message tells it.

    A llama-stack server answers with the OpenAI SDK's words for Azure's error, which keep
    Azure's message but not its object: the code and param are known from the message; the
    content filter's ``innererror`` (which categories fired) is lost.
    """
    if _FILTERED_PROMPT in message:
        return {"code": "content_filter", "param": "prompt", "message": message}
    if _CONTEXT_EXCEEDED.search(message):
        return {
            "code": "context_length_exceeded",
            "type": "invalid_request_error",
            "param": "messages",
            "message": message,
        }
    return {}


def _status_in_message(message: str) -> int:
    """Azure's status for a message that is one of its 429 or 400 answers' (else 500)."""
    if _THROTTLED.search(message):
        return 429
    if _FILTERED_PROMPT in message or _CONTEXT_EXCEEDED.search(message):
        return 400
    return 500


def _exact_wait(headers: Mapping[str, str]) -> float | None:
    """Azure's wait in seconds: ``retry-after-ms`` when present, else ``retry-after``."""
    milliseconds = _number(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000
    return _number(headers.get("retry-after"))


def _number(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) and number >= 0 else None


def _error_object_in(text: str) -> dict[str, Any]:
    """The ``{"error": {...}}`` quoted in ``text`` (JSON, or a Python dict's repr)."""
    start = _ERROR_OBJECT_START.search(text)
    if start is None:
        return {}
    quoted = text[start.start() :]
    # The object ends at one of the closing braces; try the longest candidate first.
    ends = [index for index, char in enumerate(quoted) if char == "}"]
    for end in reversed(ends[-20:]):
        candidate = quoted[: end + 1]
        for parse in (json.loads, ast.literal_eval):
            try:
                parsed = parse(candidate)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
            inner = parsed.get("error") if isinstance(parsed, dict) else None
            if isinstance(inner, dict):
                return inner
    return {}

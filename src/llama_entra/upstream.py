"""Translate what Llama Stack (library or server) and Azure raise into llama-entra's error tree.

The client holder calls ``translate_stack_error`` at the one boundary where third-party errors
enter, and ``is_azure_unauthorized`` to decide whether a failed call deserves one token refresh
and retry. Library mode raises ``openai`` and ``llama_stack_api`` errors; service mode raises
``llama_stack_client`` errors; both keep Azure's message, which never holds the token.
"""

from __future__ import annotations

import re

import httpx
import llama_stack_client
import openai

from llama_entra.errors import (
    LlamaEntraError,
    NotFoundError,
    UpstreamError,
    UpstreamUnavailableError,
)

__all__ = ["is_azure_unauthorized", "looks_like_azure_refusal", "translate_stack_error"]

# The builtin Responses provider reports an Azure 401 as a 500 that keeps Azure's text.
_AZURE_401_TEXT = re.compile(r"\b401\b|Unauthorized|Access denied", re.IGNORECASE)
_PASSED_THROUGH = frozenset({400, 404, 409, 413, 422, 429})


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return int(status) if isinstance(status, int) else None


def _message(exc: BaseException) -> str:
    if isinstance(exc, openai.APIStatusError | llama_stack_client.APIStatusError):
        body = exc.body
        if isinstance(body, dict):
            error = body.get("error", body.get("detail"))
            if isinstance(error, dict) and isinstance(error.get("message"), str):
                return str(error["message"])
            if isinstance(error, str):
                return error
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]


def looks_like_azure_refusal(text: str) -> bool:
    """True for the text Llama Stack's Responses provider keeps from an Azure 401."""
    return bool(_AZURE_401_TEXT.search(text))


def is_azure_unauthorized(exc: BaseException) -> bool:
    """True when Azure (through Llama Stack) refused the token: worth one refresh and retry."""
    if isinstance(exc, openai.AuthenticationError | llama_stack_client.AuthenticationError):
        return True
    if isinstance(exc, UpstreamError):
        return exc.status == 401
    status = _status(exc)
    if status == 401:
        return True
    return status == 500 and looks_like_azure_refusal(str(exc))


def translate_stack_error(exc: BaseException) -> LlamaEntraError:
    """The llama-entra error for an exception raised by a Llama Stack call."""
    if isinstance(exc, LlamaEntraError):
        return exc
    if isinstance(exc, llama_stack_client.APIConnectionError | httpx.TransportError):
        if isinstance(exc, llama_stack_client.APITimeoutError | httpx.TimeoutException):
            return UpstreamUnavailableError("Llama Stack did not answer in time")
        return UpstreamUnavailableError("Llama Stack is unreachable")
    if isinstance(exc, openai.APIConnectionError):  # library mode: Azure itself
        return UpstreamError("Azure OpenAI is unreachable", status=502)
    status = _status(exc)
    message = _message(exc)
    if status == 404:
        return NotFoundError(message)
    if status is not None:
        return UpstreamError(message, status=status if status in _PASSED_THROUGH else 502)
    if isinstance(exc, ValueError) and "API key" in str(exc):
        return UpstreamError("Azure OpenAI credentials were not sent with the call", status=502)
    return UpstreamError(f"Llama Stack call failed: {message}", status=502)

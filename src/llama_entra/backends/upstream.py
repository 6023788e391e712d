"""Translate what Llama Stack (either backend, library or server) raises into llama-entra errors.

Each backend maps its own client's exceptions (``llama_stack_client``, ``ogx_client``) to a
status and a message, then calls ``upstream_error``; what both backends share (the ``openai``
errors library mode raises for Azure, httpx transport errors, server errors that carry a
``status_code``) is ``translate_common``. ``UpstreamError.status`` keeps the real status, so the
client holder can tell an Azure 401 (worth one token refresh) from anything else.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import httpx
import openai

from llama_entra.azure import classify_azure_error
from llama_entra.errors import (
    AzureUnreachableError,
    LlamaEntraError,
    NotFoundError,
    TokenUnavailableError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamUnavailableError,
)

__all__ = [
    "azure_code",
    "body_message",
    "looks_like_azure_refusal",
    "never_connected",
    "translate_common",
    "upstream_error",
]

# The builtin Responses provider reports an Azure 401 as a 500 that keeps Azure's text.
_AZURE_401_TEXT = re.compile(r"\b401\b|Unauthorized|Access denied", re.IGNORECASE)
# A Llama Stack server whose remote::azure-entra provider had no token (TokenError, 503).
_ENTRA_UNAVAILABLE = re.compile(r"Entra ID token unavailable: (.+)")
# Azure's own error code, as Llama Stack passes it on: a parsed body's ``code``, or inside the
# text of the error it re-raised (``... {'error': {'code': 'PermissionDenied', ...}}``).
_AZURE_CODE = re.compile(r"""["']code["']\s*:\s*["']([A-Za-z_]+)["']""")
# Azure's text for PermissionDenied, and remote::azure-entra's, for servers that keep only text.
_PERMISSION_DENIED_TEXTS = (
    "Principal does not have access to API/Operation",
    "Azure OpenAI answered PermissionDenied",
)


def looks_like_azure_refusal(text: str) -> bool:
    """True for the text Llama Stack's Responses provider keeps from an Azure 401."""
    return bool(_AZURE_401_TEXT.search(text))


def body_message(body: Any) -> str | None:
    """The message of an OpenAI-, FastAPI- or Llama Stack-shaped error body, if it has one."""
    if not isinstance(body, dict):
        return None
    error = body.get("error", body.get("detail"))
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    if isinstance(error, str):
        return error
    return None


def azure_code(message: str, code: object = None) -> str | None:
    """Azure's error code: ``code`` when it is one, else the one quoted in ``message``."""
    if isinstance(code, str) and code:
        return code
    if (found := _AZURE_CODE.search(message)) is not None:
        return found.group(1)
    return "PermissionDenied" if any(t in message for t in _PERMISSION_DENIED_TEXTS) else None


def upstream_error(
    status: int,
    message: str,
    code: object = None,
    *,
    body: object = None,
    headers: Mapping[str, str] | None = None,
) -> LlamaEntraError:
    """The error for an upstream answer ``status`` carrying ``message`` (and Azure's ``code``).

    Azure's throttling, content filter and context window answers keep their meaning (see
    ``llama_entra.azure.answers``): read from ``body`` and ``headers`` when the answer came
    straight from Azure, else from the text a Llama Stack server kept of it.
    """
    classified = classify_azure_error(status, message, body=body, headers=headers)
    if classified is not None:
        return classified
    found = azure_code(message, code)
    message = (message.strip().splitlines() or ["(no message)"])[0][:500]
    if status == 404:
        return NotFoundError(message)
    if status == 503 and (entra := _ENTRA_UNAVAILABLE.search(message)) is not None:
        return TokenUnavailableError(entra.group(1))
    if status == 500 and looks_like_azure_refusal(message):
        return UpstreamError(message, status=401, code=found)
    return UpstreamError(message, status=status, code=found)


def translate_common(exc: BaseException) -> LlamaEntraError:
    """The llama-entra error for what any backend may raise (see the module docstring)."""
    if isinstance(exc, LlamaEntraError):
        return exc
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamUnavailableError("Llama Stack did not answer in time")
    if isinstance(exc, httpx.TransportError):
        return UpstreamConnectionError("Llama Stack is unreachable")
    if isinstance(exc, openai.APITimeoutError):  # library mode: Azure itself
        return UpstreamError("Azure OpenAI did not answer in time", status=504)
    if isinstance(exc, openai.APIConnectionError):
        if never_connected(exc):
            return AzureUnreachableError()
        return UpstreamError("Azure OpenAI is unreachable", status=502)
    if isinstance(exc, openai.APIStatusError):
        return upstream_error(
            exc.status_code,
            body_message(exc.body) or str(exc),
            exc.code,
            body=exc.body,
            headers=exc.response.headers,
        )
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return upstream_error(status, str(exc) or type(exc).__name__)
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:500]
    if isinstance(exc, ValueError) and "API key" in str(exc):
        return UpstreamError("Azure OpenAI credentials were not sent with the call", status=502)
    for kind, status in _SERVER_STATUS:
        if isinstance(exc, kind):
            return upstream_error(status, first_line)
    return UpstreamError(f"Llama Stack call failed: {first_line}", status=502)


def never_connected(exc: BaseException) -> bool:
    """Whether the SDK's connection error is a connection that was never made (httpx's or
    httpx2's ``ConnectError``): the request was not sent."""
    cause: BaseException | None = exc.__cause__ or exc.__context__
    for _ in range(10):
        if cause is None:
            return False
        if type(cause).__name__ == "ConnectError":
            return True
        cause = cause.__cause__ or cause.__context__
    return False


# What a Llama Stack server answers for these exceptions (its exception mapping), in MRO order.
_SERVER_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (ValueError, 400),  # pydantic's ValidationError too
    (PermissionError, 403),
    (NotImplementedError, 501),
    (TimeoutError, 504),
    (ConnectionError, 502),
)

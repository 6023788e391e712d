"""Azure's refusals that move a proxied request to another upstream: 429 and 503.

With several upstreams (``proxy.upstreams``), a 429 or 503 answer is read (its body is a small
JSON error) and raised as the error ``DeploymentPool`` acts on: the upstream cools down for
Azure's wait (429) or a backoff (503) and the request goes to the next one. Any other answer is
relayed to the caller as it is.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from llama_entra.azure import azure_error_object, caller_headers, classify_azure_error
from llama_entra.errors import AzureThrottledError, UpstreamError

__all__ = ["MOVING_STATUSES", "raise_if_refused"]

MOVING_STATUSES = frozenset({429, 503})


async def raise_if_refused(response: aiohttp.ClientResponse) -> aiohttp.ClientResponse:
    """``response`` itself, unless it is a 429 or 503: then its error (response released)."""
    if response.status not in MOVING_STATUSES:
        return response
    try:
        raw = await response.read()
    except aiohttp.ClientError:
        raw = b""
    finally:
        response.release()
    headers = {name.lower(): value for name, value in response.headers.items()}
    text = raw.decode("utf-8", errors="replace")
    body = _json(text)
    if response.status == 429:
        throttled = classify_azure_error(429, text, body=body, headers=headers)
        assert isinstance(throttled, AzureThrottledError)  # noqa: S101 - 429 always is
        raise throttled
    error = azure_error_object(body, text)
    raise UpstreamError(
        str(error.get("message") or "Azure OpenAI answered 503 (service unavailable)"),
        status=503,
        code=str(error.get("code") or "503"),
        azure_error=error,
        headers=caller_headers(headers, retry_after=None),
    )


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None

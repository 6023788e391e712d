"""The emulator's ``POST /openai/v1/responses``: a non-streaming Responses API answer.

Enough of Azure OpenAI's Responses API for clients that call it directly (through the sidecar
proxy, say): same auth as chat, ``input`` as a string or a list of messages, the same
deterministic reply as chat completions (``You said: <last user text>``) as one output message.
Tools, streaming and stored responses are not emulated (400).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from llama_entra.emulator.azure_openai import (
    authorized,
    emulator_state,
    error_response,
    json_response,
    reply_for,
)

__all__ = ["response_routes"]


def _last_user_text(raw: object) -> str | None:
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, list):
        return None
    for item in reversed(raw):
        if isinstance(item, dict) and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                parts = [p.get("text", "") for p in content if isinstance(p, dict)]
                return " ".join(parts).strip()
    return ""


async def create_response(request: Request) -> Response:
    """``POST /openai/v1/responses``."""
    if (denied := authorized(request)) is not None:
        return denied
    state = emulator_state(request)
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        return error_response(400, "invalid_request_error", "The request body is not valid JSON.")
    if not isinstance(body, dict):
        return error_response(400, "invalid_request_error", "The request body must be an object.")
    model = body.get("model")
    if model not in state.settings.models:
        return error_response(
            404, "DeploymentNotFound", "The API deployment for this resource does not exist."
        )
    if body.get("stream") or body.get("tools"):
        return error_response(
            400, "invalid_request_error", "The emulator answers plain, tool-less responses only."
        )
    prompt = _last_user_text(body.get("input"))
    if prompt is None:
        return error_response(400, "invalid_request_error", "'input' is required.")
    state.responses += 1
    words = reply_for(prompt, body.get("max_output_tokens"))
    identity = hashlib.sha256(f"{model}:{prompt}".encode()).hexdigest()[:24]
    text = " ".join(words)
    message: dict[str, Any] = {
        "id": f"msg_{identity}",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }
    input_tokens = len(prompt.split()) or 1
    return json_response(
        request,
        {
            "id": f"resp_{identity}",
            "object": "response",
            "created_at": int(state.clock()),
            "status": "completed",
            "model": model,
            "output": [message],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": {
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": len(words),
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input_tokens + len(words),
            },
        },
    )


def response_routes() -> list[Route]:
    """The Responses route of the v1 API."""
    return [Route("/openai/v1/responses", create_response, methods=["POST"])]

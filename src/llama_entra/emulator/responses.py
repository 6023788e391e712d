"""The emulator's ``POST /openai/v1/responses``: a non-streaming Responses API answer.

Enough of Azure OpenAI's Responses API for clients that call it directly (through the sidecar
proxy, say): same auth as chat, ``input`` as a string or a list of messages, the same
deterministic reply as chat completions (``You said: <last user text>``) as one output message.
The same deployment checks as chat (``gate``: throttling, rate limits, context window, prompt
filter, ``!status NNN``), the prompt estimate counting every input message's words and
``max_output_tokens`` as the requested output. ``!filter-completion`` gives
``status: "incomplete"`` with ``incomplete_details: {"reason": "content_filter"}`` and the text
produced before the cut. Tools, streaming and stored responses are not emulated (400).
"""

from __future__ import annotations

import hashlib
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from llama_entra.emulator.azure_openai import (
    emulator_state,
    error_response,
    json_response,
    read_json,
    reply_for,
)
from llama_entra.emulator.caller import check_caller
from llama_entra.emulator.content_filter import completion_trigger, cut_reply
from llama_entra.emulator.gate import DeploymentCall, admit, deployment_not_found, finish
from llama_entra.emulator.limits import CallCost, estimate_tokens

__all__ = ["response_routes"]


def _texts(raw: object) -> list[str]:
    """The text of each input message (a string input is one message)."""
    if isinstance(raw, str):
        return [raw]
    if not isinstance(raw, list):
        return []
    return [_content_text(item.get("content")) for item in raw if isinstance(item, dict)]


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict)).strip()
    return ""


def _last_user_text(raw: object) -> str | None:
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, list):
        return None
    for item in reversed(raw):
        if isinstance(item, dict) and item.get("role") == "user":
            return _content_text(item.get("content"))
    return ""


async def create_response(request: Request) -> Response:
    """``POST /openai/v1/responses``."""
    state = emulator_state(request)
    refusal = check_caller(state, request)
    body = await read_json(request)
    named = body.get("model") if isinstance(body, dict) else None
    model = named if isinstance(named, str) else None
    if refusal is not None:
        return finish(state, model, refusal.response, refusal.outcome)
    if isinstance(body, Response):
        return body
    if model not in state.settings.models:
        return finish(state, model, deployment_not_found(), "not_found")
    if body.get("stream") or body.get("tools"):
        unsupported = error_response(
            400, "invalid_request_error", "The emulator answers plain, tool-less responses only."
        )
        return finish(state, model, unsupported, "error")
    prompt = _last_user_text(body.get("input"))
    if prompt is None:
        missing = error_response(400, "invalid_request_error", "'input' is required.")
        return finish(state, model, missing, "error")
    max_output = body.get("max_output_tokens")
    cost = CallCost(
        estimate_tokens(_texts(body.get("input"))),
        max_output if isinstance(max_output, int) else None,
    )
    call = DeploymentCall("responses", model, cost, prompt)
    if (refused := admit(state, call)) is not None:
        return finish(state, model, refused.response, refused.outcome)
    state.responses += 1
    filtered = completion_trigger(prompt)
    answer = _answer(request, call, int(state.clock()), filtered)
    return finish(state, model, answer, "ok" if filtered is None else "content_filter")


def _answer(request: Request, call: DeploymentCall, created: int, filtered: str | None) -> Response:
    prompt, model = call.prompt, call.model
    words = reply_for(prompt, call.cost.max_tokens)
    if filtered is not None:
        words = cut_reply(words)
    identity = hashlib.sha256(f"{model}:{prompt}".encode()).hexdigest()[:24]
    text = " ".join(words)
    message: dict[str, Any] = {
        "id": f"msg_{identity}",
        "type": "message",
        "role": "assistant",
        "status": "completed" if filtered is None else "incomplete",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }
    input_tokens = len(prompt.split()) or 1
    return json_response(
        request,
        {
            "id": f"resp_{identity}",
            "object": "response",
            "created_at": created,
            "status": "completed" if filtered is None else "incomplete",
            "incomplete_details": None if filtered is None else {"reason": "content_filter"},
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

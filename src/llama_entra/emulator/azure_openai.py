"""The Azure OpenAI half of the emulator: models and chat completions behind Entra tokens.

Accepts only unexpired tokens the emulator issued (``Authorization: Bearer``) or the configured
static key (``api-key`` or Bearer), and answers 401 the way Azure does otherwise. Replies are
derived from the prompt ("You said: ..."), so tests can assert on them; ``!call QUERY`` and tool
results drive tool calling (``llama_entra.emulator.tools``). A user message starting
with ``!status NNN`` makes the call fail with that status (429 carries ``retry-after: 1``), to
test how callers handle Azure errors.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import re
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from llama_entra.emulator.state import EmulatorState
from llama_entra.emulator.tools import tool_call_for, tool_result_words

__all__ = [
    "authorized",
    "azure_openai_routes",
    "emulator_state",
    "error_response",
    "json_response",
    "reply_for",
]

_STATUS_PROMPT = re.compile(r"^!status (\d{3})\b")
_MAX_REPLY_WORDS = 64


def emulator_state(request: Request) -> EmulatorState:
    """The state of the emulator serving ``request``."""
    state: EmulatorState = request.app.state.emulator
    return state


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    """An error in Azure OpenAI's shape."""
    body = {"error": {"code": code, "message": message, "type": None, "param": None}}
    return JSONResponse(body, status_code=status, headers=headers)


def json_response(request: Request, payload: Any) -> Response:
    """A JSON answer, gzip-compressed when the caller accepts it (as Azure's front door does)."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = {"content-type": "application/json"}
    if "gzip" in request.headers.get("accept-encoding", ""):
        body = gzip.compress(body, compresslevel=5)
        headers |= {"content-encoding": "gzip", "vary": "Accept-Encoding"}
    return Response(body, headers=headers)


def authorized(request: Request) -> Response | None:
    """None when the caller may proceed, else Azure's 401 answer."""
    state = emulator_state(request)
    state.recent_headers.append(dict(request.headers))
    key = request.headers.get("api-key")
    bearer = request.headers.get("authorization", "")
    presented = key or (bearer[7:] if bearer.lower().startswith("bearer ") else "")
    if presented and state.accepts(presented):
        return None
    state.unauthorized += 1
    if not presented:
        message = "Access denied due to missing subscription key or token."
    else:
        message = (
            "Unauthorized. Access token is missing, invalid, audience is incorrect "
            "(https://cognitiveservices.azure.com), or have expired."
        )
    return error_response(401, "401", message)


async def list_models(request: Request) -> Response:
    """``GET /openai/v1/models``."""
    if (denied := authorized(request)) is not None:
        return denied
    state = emulator_state(request)
    state.model_listings += 1
    data = [
        {"id": model, "object": "model", "created": 1_715_000_000, "owned_by": "system"}
        for model in state.settings.models
    ]
    return json_response(request, {"object": "list", "data": data})


async def chat_completions(request: Request) -> Response:
    """``POST /openai/v1/chat/completions`` and the classic per-deployment route."""
    if (denied := authorized(request)) is not None:
        return denied
    state = emulator_state(request)
    deployment = request.path_params.get("deployment")
    if deployment is not None and "api-version" not in request.query_params:
        return error_response(404, "404", "Resource not found")
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        return error_response(400, "invalid_request_error", "The request body is not valid JSON.")
    if not isinstance(body, dict):
        return error_response(
            400, "invalid_request_error", "The request body must be a JSON object."
        )
    model = deployment or body.get("model")
    if model not in state.settings.models:
        return error_response(
            404,
            "DeploymentNotFound",
            "The API deployment for this resource does not exist. If you created the deployment "
            "within the last 5 minutes, please wait a moment and try again.",
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return error_response(400, "invalid_request_error", "'messages' must be a non-empty array.")
    prompt = _last_user_text(messages)
    if (match := _STATUS_PROMPT.match(prompt)) is not None:
        status = int(match.group(1))
        headers = {"retry-after": "1"} if status == 429 else None
        return error_response(status, str(status), f"Injected status {status} (emulator).", headers)
    state.completions += 1
    last = messages[-1] if isinstance(messages[-1], dict) else {}
    call = tool_call_for(body, prompt, last.get("role"))
    words = tool_result_words(last, _text(last)) or reply_for(
        prompt, body.get("max_tokens") or body.get("max_completion_tokens")
    )
    if call is not None:
        words = []
    usage = {
        "prompt_tokens": sum(len(_text(m).split()) or 1 for m in messages if isinstance(m, dict)),
        "completion_tokens": len(words),
    }
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    identity = "chatcmpl-" + hashlib.sha256(f"{model}:{prompt}".encode()).hexdigest()[:24]
    finish = "length" if len(words) < len(_reply_words(prompt)) else "stop"
    if call is not None:
        finish = "tool_calls"
    elif last.get("role") == "tool":
        finish = "stop"
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        deltas = call.stream_deltas() if call else None
        chunks = _stream(
            state, identity, model, words, finish, usage if include_usage else None, deltas
        )
        return StreamingResponse(
            chunks, media_type="text/event-stream", headers={"cache-control": "no-cache"}
        )
    message: dict[str, Any] = {"role": "assistant", "content": " ".join(words), "refusal": None}
    if call is not None:
        message |= {"content": None, "tool_calls": [call.as_message_call()]}
    return json_response(
        request,
        {
            "id": identity,
            "object": "chat.completion",
            "created": int(state.clock()),
            "model": model,
            "choices": [
                {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
            ],
            "usage": usage,
            "system_fingerprint": "fp_emulator",
        },
    )


def reply_for(prompt: str, max_tokens: object = None) -> list[str]:
    """The deterministic reply to ``prompt``, as words (one word = one token, one chunk)."""
    words = _reply_words(prompt)
    if isinstance(max_tokens, int) and max_tokens > 0:
        return words[:max_tokens]
    return words


def _reply_words(prompt: str) -> list[str]:
    return ["You", "said:", *(prompt.split() or ["nothing."])][:_MAX_REPLY_WORDS]


async def _stream(
    state: EmulatorState,
    identity: str,
    model: str,
    words: list[str],
    finish: str,
    usage: dict[str, int] | None,
    deltas: list[dict[str, Any]] | None = None,
) -> AsyncIterator[bytes]:
    created = int(state.clock())

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        payload = {
            "id": identity,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [choice],
        }
        return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"

    if state.faults.first_chunk_delay:  # a model's time to first token
        await asyncio.sleep(state.faults.first_chunk_delay)
    for delta in deltas or [{"role": "assistant", "content": ""}]:
        yield chunk(delta)
    for index, word in enumerate(words):
        if state.faults.stream_delay:
            await asyncio.sleep(state.faults.stream_delay)
        yield chunk({"content": word if index == 0 else f" {word}"})
    yield chunk({}, finish)
    if usage is not None:
        payload = {
            "id": identity,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": usage,
        }
        yield b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text(message)
    return ""


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict)).strip()
    return ""


def azure_openai_routes() -> list[Route]:
    """The Azure OpenAI routes (v1 API and the classic deployment route)."""
    return [
        Route("/openai/v1/models", list_models),
        Route("/openai/v1/chat/completions", chat_completions, methods=["POST"]),
        Route(
            "/openai/deployments/{deployment}/chat/completions",
            chat_completions,
            methods=["POST"],
        ),
    ]

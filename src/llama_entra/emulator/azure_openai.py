"""The Azure OpenAI half of the emulator: models and chat completions behind Entra tokens.

Callers are checked as Azure checks them (``caller``: key or token, audience, role), and each
chat completion goes through Azure's deployment checks (``gate``: throttling, rate limits,
context window, prompt filter, ``!status NNN``) before the model answers. Replies are derived
from the prompt ("You said: ..."), so tests can assert on them; ``!call QUERY`` and tool
results drive tool calling (``tools``), ``!filter-prompt`` and ``!filter-completion`` the
content filter (``content_filter``); image parts are checked as Azure checks them (``images``).
Successful completions carry Azure's content filter
annotations; streams use Azure's chunk shapes (``chat_stream``). An unknown deployment is
Azure's 404 ``DeploymentNotFound``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from llama_entra.emulator.caller import check_caller
from llama_entra.emulator.chat_stream import StreamedReply, chat_stream
from llama_entra.emulator.content_filter import (
    completion_results,
    completion_trigger,
    cut_reply,
    prompt_filter_results,
)
from llama_entra.emulator.gate import (
    DEFAULT_API_VERSION,
    DeploymentCall,
    admit,
    deployment_key,
    deployment_not_found,
    finish,
)
from llama_entra.emulator.images import describe_image, image_problem
from llama_entra.emulator.limits import CallCost, estimate_tokens
from llama_entra.emulator.state import EmulatorState
from llama_entra.emulator.tools import tool_call_for, tool_result_words

__all__ = [
    "authorized",
    "azure_openai_routes",
    "emulator_state",
    "error_response",
    "json_response",
    "read_json",
    "reply_for",
]

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
    """None when the caller may proceed, else Azure's 401 answer (see ``caller``)."""
    refusal = check_caller(emulator_state(request), request)
    return None if refusal is None else refusal.response


async def read_json(request: Request) -> dict[str, Any] | Response:
    """The request's JSON object, or the 400 for a body that is not one."""
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        return error_response(400, "invalid_request_error", "The request body is not valid JSON.")
    if not isinstance(body, dict):
        return error_response(
            400, "invalid_request_error", "The request body must be a JSON object."
        )
    return body


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
    state = emulator_state(request)
    refusal = check_caller(state, request)
    deployment = request.path_params.get("deployment")
    if deployment is not None and "api-version" not in request.query_params:
        return refusal.response if refusal else error_response(404, "404", "Resource not found")
    body = await read_json(request)
    named = deployment or (body.get("model") if isinstance(body, dict) else None)
    model = named if isinstance(named, str) else None
    resource = request.path_params.get("resource")
    key = deployment_key(resource, model) if model is not None else None
    if refusal is not None:
        return finish(state, key, refusal.response, refusal.outcome)
    if isinstance(body, Response):
        return body
    if model not in state.settings.models:
        return finish(state, key, deployment_not_found(), "not_found")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        invalid = error_response(
            400, "invalid_request_error", "'messages' must be a non-empty array."
        )
        return finish(state, key, invalid, "error")
    if (problem := image_problem(messages)) is not None:
        return finish(state, key, error_response(400, "BadRequest", problem), "error")
    prompt = _last_user_text(messages)
    max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
    texts = [_text(m) for m in messages if isinstance(m, dict)]
    cost = CallCost(estimate_tokens(texts), max_tokens if isinstance(max_tokens, int) else None)
    api_version = request.query_params.get("api-version") or DEFAULT_API_VERSION
    call = DeploymentCall("chat", model, cost, prompt, api_version, resource)
    if (refused := admit(state, call)) is not None:
        return finish(state, key, refused.response, refused.outcome)
    state.completions += 1
    filtered = completion_trigger(prompt)
    answer = _answer(request, state, call, body, messages, filtered)
    return finish(state, key, answer, "ok" if filtered is None else "content_filter")


def _answer(
    request: Request,
    state: EmulatorState,
    call: DeploymentCall,
    body: dict[str, Any],
    messages: list[Any],
    filtered: str | None,
) -> Response:
    prompt, model = call.prompt, call.model
    last = messages[-1] if isinstance(messages[-1], dict) else {}
    tool_call = tool_call_for(body, prompt, last.get("role"))
    words = tool_result_words(last, _text(last)) or reply_for(prompt, call.cost.max_tokens)
    if tool_call is not None:
        words = []
    finish_reason = "length" if len(words) < len(_reply_words(prompt)) else "stop"
    if tool_call is not None:
        finish_reason = "tool_calls"
    elif last.get("role") == "tool":
        finish_reason = "stop"
    if filtered is not None:
        words, finish_reason = cut_reply(words), "content_filter"
    usage = {"prompt_tokens": call.cost.prompt_tokens, "completion_tokens": len(words)}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    identity = "chatcmpl-" + hashlib.sha256(f"{model}:{prompt}".encode()).hexdigest()[:24]
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        reply = StreamedReply(
            identity,
            model,
            words,
            finish_reason,
            usage if include_usage else None,
            tool_call.stream_deltas() if tool_call else None,
            filtered,
        )
        return StreamingResponse(
            chat_stream(state, reply),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache"},
        )
    message: dict[str, Any] = {"role": "assistant", "content": " ".join(words), "refusal": None}
    if tool_call is not None:
        message |= {"content": None, "tool_calls": [tool_call.as_message_call()]}
    choice = {
        "index": 0,
        "message": message,
        "finish_reason": finish_reason,
        "logprobs": None,
        "content_filter_results": completion_results(filtered),
    }
    return json_response(
        request,
        {
            "id": identity,
            "object": "chat.completion",
            "created": int(state.clock()),
            "model": model,
            "choices": [choice],
            "usage": usage,
            "system_fingerprint": "fp_emulator",
            "prompt_filter_results": prompt_filter_results(),
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
        return " ".join(_part_text(part) for part in content if isinstance(part, dict)).strip()
    return ""


def _part_text(part: dict[str, Any]) -> str:
    """A content part as the echo sees it: its text, or a description of its image."""
    if part.get("type") == "image_url":
        return describe_image(part)
    return str(part.get("text", ""))


def azure_openai_routes() -> list[Route]:
    """The Azure OpenAI routes (v1 API, on named resources too, and the classic route)."""
    return [
        Route("/openai/v1/models", list_models),
        Route("/openai/v1/chat/completions", chat_completions, methods=["POST"]),
        # Further Azure OpenAI resources serving the same deployments, each with its own
        # limits and counters (``RESOURCE/MODEL``): base URL ``/RESOURCE/openai/v1``.
        Route("/{resource}/openai/v1/models", list_models),
        Route("/{resource}/openai/v1/chat/completions", chat_completions, methods=["POST"]),
        Route(
            "/openai/deployments/{deployment}/chat/completions",
            chat_completions,
            methods=["POST"],
        ),
    ]

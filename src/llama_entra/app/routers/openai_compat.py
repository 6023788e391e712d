"""OpenAI-compatible endpoints: ``POST /v1/chat/completions`` and ``POST /v1/responses``.

Bodies pass to Llama Stack as they came, with the Entra token added per call, so the ``openai``
SDK can use the service as base URL. Streams are relayed chunk by chunk as server-sent events.
Errors have OpenAI's shape (``{"error": {message, type, code}}``), also inside a stream.
Token quotas are checked before the model is asked (429 ``insufficient_quota``) and charged
with the usage Azure reports (``app.usage`` for streams). A
``conversation`` on ``/v1/responses`` must be the caller's own (or one without an owner).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.responses import JSONResponse, StreamingResponse

from llama_entra.app.deps import ConversationsDep, HolderDep, QuotasDep, authorized
from llama_entra.app.errors import openai_error_of
from llama_entra.app.schemas import ChatCompletionRequest, OpenAIErrorResponse, ResponsesRequest
from llama_entra.app.usage import StreamUsage, ask_for_usage, chat_tokens, response_tokens
from llama_entra.auth import Principal
from llama_entra.backends.upstream import looks_like_azure_refusal
from llama_entra.errors import LlamaEntraError, UpstreamError

__all__ = ["router"]

router = APIRouter(tags=["openai"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": OpenAIErrorResponse}
    for status in (400, 401, 403, 404, 413, 422, 429, 502, 503)
}
_LIFECYCLE = frozenset({"response.created", "response.in_progress", "response.queued"})


@router.post("/v1/chat/completions", responses=_ERRORS)
async def chat_completions(
    body: ChatCompletionRequest,
    holder: HolderDep,
    quotas: QuotasDep,
    principal: Annotated[Principal, Depends(authorized("chat"))],
) -> Any:
    """OpenAI chat completion (``stream: true`` answers ``text/event-stream``)."""
    await quotas.check(principal.name)
    model = await holder.resolve_model(body.model)
    params = body.model_dump(exclude_unset=True)
    if not body.stream:
        completion = await holder.chat(model, params)
        await quotas.spend(principal.name, chat_tokens(completion.get("usage")))
        return JSONResponse(completion)
    usage = StreamUsage(quotas, principal.name)
    if quotas.enabled:
        usage.caller_asked = ask_for_usage(params)
    chunks = holder.chat_stream(model, params)
    first = await anext(chunks, None)
    return StreamingResponse(_chat_sse(first, chunks, usage), media_type="text/event-stream")


async def _chat_sse(
    first: dict[str, Any] | None,
    chunks: AsyncGenerator[dict[str, Any], None],
    usage: StreamUsage,
) -> AsyncIterator[bytes]:
    try:
        chunk = first
        while chunk is not None:
            shown = usage.relay(chunk)
            if shown is not None:
                yield b"data: " + json.dumps(shown).encode() + b"\n\n"
            chunk = await anext(chunks, None)
        await usage.spend()
        yield b"data: [DONE]\n\n"
    except LlamaEntraError as exc:
        yield b"data: " + json.dumps({"error": _error(exc)}).encode() + b"\n\n"
    finally:
        await chunks.aclose()


@router.post("/v1/responses", responses=_ERRORS)
async def responses(
    body: ResponsesRequest,
    holder: HolderDep,
    store: ConversationsDep,
    quotas: QuotasDep,
    principal: Annotated[Principal, Depends(authorized("responses"))],
) -> Any:
    """OpenAI Responses API through Llama Stack's implementation (``conversation`` works)."""
    await quotas.check(principal.name)
    model = await holder.resolve_model(body.model)
    params = body.model_dump(exclude_unset=True) | {"model": model.id}
    params.pop("stream", None)
    conversation = params.get("conversation")
    if isinstance(conversation, dict):
        conversation = conversation.get("id")
    if isinstance(conversation, str):
        await store.open(conversation, principal.name)
    client = holder.client
    if not body.stream:
        result = await holder.call(
            model,
            lambda headers, model_id: client.create_response(params | {"model": model_id}, headers),
            name="responses",
        )
        await quotas.spend(principal.name, response_tokens(result.get("usage")))
        return JSONResponse(result)

    async def open_stream(headers: dict[str, str], model_id: str) -> AsyncIterator[dict[str, Any]]:
        return _refusal_first(await client.response_stream(params | {"model": model_id}, headers))

    events = holder.stream(model, open_stream, name="responses")
    first = await anext(events, None)
    usage = StreamUsage(quotas, principal.name)
    return StreamingResponse(_responses_sse(first, events, usage), media_type="text/event-stream")


async def _refusal_first(
    stream: AsyncIterator[dict[str, Any]],
) -> AsyncIterator[dict[str, Any]]:
    """Hold back lifecycle events until content or failure, so an Azure 401 can be retried.

    Llama Stack's Responses implementation reports Azure's 401 as a ``response.failed``
    event after ``response.created``; raising it before anything was sent lets the holder
    refresh the token and start over.
    """
    held: list[dict[str, Any]] = []
    started = False
    async for event in stream:
        kind = event.get("type", "")
        if not started:
            if kind == "response.failed" and looks_like_azure_refusal(_failure_text(event)):
                raise UpstreamError(_failure_text(event), status=401)
            if kind in _LIFECYCLE:
                held.append(event)
                continue
            started = True
            for waiting in held:
                yield waiting
        yield event
    if not started:
        for waiting in held:
            yield waiting


def _failure_text(event: dict[str, Any]) -> str:
    error = (event.get("response") or {}).get("error") or {}
    return str(error.get("message") or "") if isinstance(error, dict) else ""


async def _responses_sse(
    first: dict[str, Any] | None,
    events: AsyncGenerator[dict[str, Any], None],
    usage: StreamUsage,
) -> AsyncIterator[bytes]:
    try:
        event = first
        while event is not None:
            usage.event(event)
            if event.get("type") == "response.completed":
                await usage.spend()  # before the caller sees the end
            data = json.dumps(event)
            yield f"event: {event.get('type', 'message')}\ndata: {data}\n\n".encode()
            event = await anext(events, None)
    except LlamaEntraError as exc:
        yield b"event: error\ndata: " + json.dumps({"error": _error(exc)}).encode() + b"\n\n"
    finally:
        await events.aclose()


def _error(exc: LlamaEntraError) -> dict[str, Any]:
    """OpenAI's error object for a failure inside a stream (its HTTP status as ``status``)."""
    status, error, _ = openai_error_of(exc)
    return error | {"status": status}

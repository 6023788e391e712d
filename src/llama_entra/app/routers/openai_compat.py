"""OpenAI-compatible endpoints: ``POST /v1/chat/completions`` and ``POST /v1/responses``.

Bodies pass to Llama Stack as they came (fields the SDK does not name go in ``extra_body``),
with the Entra token added per call, so the ``openai`` SDK can use the service as base URL.
Streams are relayed chunk by chunk as server-sent events.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.responses import JSONResponse, StreamingResponse

from llama_entra.app.deps import HolderDep, authorized
from llama_entra.app.errors import status_and_body
from llama_entra.app.schemas import ChatCompletionRequest, ErrorResponse, ResponsesRequest
from llama_entra.auth import Principal
from llama_entra.errors import LlamaEntraError, UpstreamError
from llama_entra.upstream import looks_like_azure_refusal

__all__ = ["router"]

router = APIRouter(tags=["openai"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (401, 403, 404, 413, 422, 429, 502, 503)
}
_LIFECYCLE = frozenset({"response.created", "response.in_progress", "response.queued"})


def _split(method: Callable[..., Any], params: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for an SDK method: named ones direct, the rest in ``extra_body``."""
    named = set(inspect.signature(method).parameters)
    known = {key: value for key, value in params.items() if key in named}
    extra = {key: value for key, value in params.items() if key not in named}
    return {**known, "extra_body": extra} if extra else known


def _dump(obj: Any) -> Any:
    return obj.model_dump(mode="json", exclude_unset=True) if hasattr(obj, "model_dump") else obj


@router.post("/v1/chat/completions", responses=_ERRORS)
async def chat_completions(
    body: ChatCompletionRequest,
    holder: HolderDep,
    _: Annotated[Principal, Depends(authorized("chat"))],
) -> Any:
    """OpenAI chat completion (``stream: true`` answers ``text/event-stream``)."""
    model = await holder.resolve_model(body.model)
    params = body.model_dump(exclude_unset=True) | {"model": model.id}
    create = holder.client.chat.completions.create
    if not body.stream:
        result = await holder.call(
            model, lambda headers: create(**_split(create, params), extra_headers=headers)
        )
        return JSONResponse(_dump(result))
    chunks = holder.stream(
        model, lambda headers: create(**_split(create, params), extra_headers=headers)
    )
    first = await anext(chunks, None)
    return StreamingResponse(_chat_sse(first, chunks), media_type="text/event-stream")


async def _chat_sse(first: Any, chunks: AsyncGenerator[Any, None]) -> AsyncIterator[bytes]:
    try:
        chunk = first
        while chunk is not None:
            yield b"data: " + json.dumps(_dump(chunk)).encode() + b"\n\n"
            chunk = await anext(chunks, None)
        yield b"data: [DONE]\n\n"
    except LlamaEntraError as exc:
        yield b"data: " + json.dumps({"error": _error(exc)}).encode() + b"\n\n"
    finally:
        await chunks.aclose()


@router.post("/v1/responses", responses=_ERRORS)
async def responses(
    body: ResponsesRequest,
    holder: HolderDep,
    _: Annotated[Principal, Depends(authorized("responses"))],
) -> Any:
    """OpenAI Responses API through Llama Stack's implementation (``conversation`` works)."""
    model = await holder.resolve_model(body.model)
    params = body.model_dump(exclude_unset=True) | {"model": model.id}
    create = holder.client.responses.create
    if not body.stream:
        result = await holder.call(
            model, lambda headers: create(**_split(create, params), extra_headers=headers)
        )
        return JSONResponse(_dump(result))

    async def open_stream(headers: dict[str, str]) -> AsyncIterator[Any]:
        stream = await create(**_split(create, params), extra_headers=headers)
        return _refusal_first(stream)

    events = holder.stream(model, open_stream)
    first = await anext(events, None)
    return StreamingResponse(_responses_sse(first, events), media_type="text/event-stream")


async def _refusal_first(stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """Hold back lifecycle events until content or failure, so an Azure 401 can be retried.

    Llama Stack's Responses implementation reports Azure's 401 as a ``response.failed``
    event after ``response.created``; raising it before anything was sent lets the holder
    refresh the token and start over.
    """
    held: list[Any] = []
    started = False
    async for event in stream:
        kind = getattr(event, "type", "")
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


def _failure_text(event: Any) -> str:
    error = getattr(getattr(event, "response", None), "error", None)
    return str(getattr(error, "message", "") or "")


async def _responses_sse(first: Any, events: AsyncGenerator[Any, None]) -> AsyncIterator[bytes]:
    try:
        event = first
        while event is not None:
            data = json.dumps(_dump(event))
            yield f"event: {getattr(event, 'type', 'message')}\ndata: {data}\n\n".encode()
            event = await anext(events, None)
    except LlamaEntraError as exc:
        yield b"event: error\ndata: " + json.dumps({"error": _error(exc)}).encode() + b"\n\n"
    finally:
        await events.aclose()


def _error(exc: LlamaEntraError) -> dict[str, Any]:
    status, body, _ = status_and_body(exc)
    return {"code": status, "message": f"{body['detail']['response']}: {body['detail']['cause']}"}

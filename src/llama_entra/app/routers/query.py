"""``POST /v1/query`` and ``POST /v1/streaming_query``: questions with conversation history.

Inference goes through Llama Stack's chat completions (so an Azure 401 is seen and retried once
with a fresh token); turns are kept in Llama Stack's conversation store. The stream uses
lightspeed-stack's event format and relays every chunk as it arrives.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Request
from sse_starlette import EventSourceResponse

from llama_entra.app.deps import HolderDep, authorized
from llama_entra.app.errors import status_and_body
from llama_entra.app.schemas import ErrorResponse, QueryRequest, QueryResponse
from llama_entra.auth import Principal
from llama_entra.conversations import create_conversation, load_history, record_turn
from llama_entra.errors import LlamaEntraError
from llama_entra.stack import ClientHolder

__all__ = ["router"]

router = APIRouter(tags=["query"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (401, 403, 404, 413, 422, 502, 503)
}


async def _messages(holder: ClientHolder, body: QueryRequest) -> tuple[str | None, list[Any]]:
    """The chat messages for ``body``: system prompt, conversation history, the question."""
    history: list[Any] = []
    if body.conversation_id:
        history = await load_history(holder, body.conversation_id)
    system = [{"role": "system", "content": body.system_prompt}] if body.system_prompt else []
    return body.conversation_id, [*system, *history, {"role": "user", "content": body.query}]


@router.post("/v1/query", response_model=QueryResponse, responses=_ERRORS)
async def query(
    body: QueryRequest,
    holder: HolderDep,
    _: Annotated[Principal, Depends(authorized("query"))],
) -> QueryResponse:
    """Ask the model; continue ``conversation_id`` when given, else start a conversation."""
    model = await holder.resolve_model(body.model, body.provider)
    conversation_id, messages = await _messages(holder, body)
    completion = await holder.call(
        model,
        lambda headers: holder.client.chat.completions.create(
            model=model.id, messages=messages, extra_headers=headers
        ),
    )
    answer = (completion.choices[0].message.content or "") if completion.choices else ""
    if conversation_id is None:
        conversation_id = await create_conversation(holder)
    await record_turn(holder, conversation_id, body.query, answer)
    usage = completion.usage
    return QueryResponse(
        conversation_id=conversation_id,
        response=answer,
        model=model.id,
        input_tokens=usage.prompt_tokens if usage else 0,
        output_tokens=usage.completion_tokens if usage else 0,
    )


@router.post(
    "/v1/streaming_query",
    responses={200: {"content": {"text/event-stream": {}}}, **_ERRORS},
    response_class=EventSourceResponse,
)
async def streaming_query(
    body: QueryRequest,
    request: Request,
    holder: HolderDep,
    _: Annotated[Principal, Depends(authorized("streaming_query"))],
) -> EventSourceResponse:
    """Like ``/v1/query``, answered as server-sent events: start, token..., end (or error)."""
    model = await holder.resolve_model(body.model, body.provider)
    conversation_id, messages = await _messages(holder, body)
    if conversation_id is None:
        conversation_id = await create_conversation(holder)

    async def open_stream(headers: dict[str, str]) -> AsyncIterator[Any]:
        stream = await holder.client.chat.completions.create(
            model=model.id,
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=headers,
        )
        return cast(AsyncIterator[Any], stream)

    chunks = holder.stream(model, open_stream)
    # The first chunk is awaited here, so a token or Azure failure is a plain HTTP error.
    first = await anext(chunks, None)
    request_id = str(getattr(request.state, "request_id", ""))
    events = _events(holder, conversation_id, body.query, request_id, first, chunks)
    return EventSourceResponse(events, sep="\n", ping=15)


async def _events(
    holder: ClientHolder,
    conversation_id: str,
    question: str,
    request_id: str,
    first: Any,
    chunks: AsyncGenerator[Any, None],
) -> AsyncIterator[dict[str, str]]:
    def event(name: str, data: dict[str, Any]) -> dict[str, str]:
        return {"data": json.dumps({"event": name, "data": data})}

    yield event("start", {"conversation_id": conversation_id, "request_id": request_id})
    parts: list[str] = []
    usage: Any = None
    try:
        chunk = first
        while chunk is not None:
            usage = getattr(chunk, "usage", None) or usage
            for choice in getattr(chunk, "choices", None) or []:
                text = getattr(choice.delta, "content", None)
                if text:
                    parts.append(text)
                    yield event("token", {"id": len(parts) - 1, "token": text})
            chunk = await anext(chunks, None)
        await record_turn(holder, conversation_id, question, "".join(parts))
    except LlamaEntraError as exc:
        status, body, _ = status_and_body(exc)
        detail = body["detail"]
        yield event(
            "error", {"status": status, "response": detail["response"], "cause": detail["cause"]}
        )
        return
    finally:
        await chunks.aclose()
    yield event(
        "end",
        {
            "conversation_id": conversation_id,
            "input_tokens": usage.prompt_tokens if usage else 0,
            "output_tokens": usage.completion_tokens if usage else 0,
        },
    )

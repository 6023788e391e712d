"""``POST /v1/streaming_query``: the answer as it is generated, in lightspeed-stack's format.

``media_type: application/json`` (the default) answers server-sent events, one JSON object per
``data:`` line: ``start`` {conversation_id, request_id}, one ``token`` {id, token} per chunk as
it arrives (never buffered), ``turn_complete`` {id, token: the whole answer}, then ``end``
{data: {referenced_documents, truncated, input_tokens, output_tokens, content_filtered},
available_quotas}, or an ``error`` {status_code, response, cause}. ``content_filtered`` is true
when Azure's content filter cut the answer (``finish_reason: content_filter``): the tokens sent
are what Azure produced before it. ``available_quotas`` is what each token quota has left once
the usage Azure reports at the stream's end is counted. ``media_type: text/plain`` answers the
bare text (an error as ``Status: N - response - cause``).

The first chunk is awaited before anything is sent, on purpose: a token, model or conversation
failure before the answer starts is a plain HTTP error with a status a client can act on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sse_starlette import EventSourceResponse
from starlette.responses import Response, StreamingResponse

from llama_entra.app import turns
from llama_entra.app.deps import ConversationsDep, HolderDep, QuotasDep, SummariesDep, authorized
from llama_entra.app.errors import status_and_body
from llama_entra.app.routers.query import ERRORS
from llama_entra.app.schemas import QueryRequest
from llama_entra.auth import Principal
from llama_entra.conversations import ConversationStore
from llama_entra.conversations.topics import TopicSummarizer
from llama_entra.errors import LlamaEntraError
from llama_entra.quotas import QuotaLimiter

__all__ = ["router"]

router = APIRouter(tags=["query"])
Chunks = AsyncGenerator[dict[str, Any], None]


@router.post(
    "/v1/streaming_query",
    responses={200: {"content": {"text/event-stream": {}, "text/plain": {}}}, **ERRORS},
    response_class=EventSourceResponse,
)
async def streaming_query(
    body: QueryRequest,
    request: Request,
    holder: HolderDep,
    store: ConversationsDep,
    summaries: SummariesDep,
    quotas: QuotasDep,
    principal: Annotated[Principal, Depends(authorized("streaming_query"))],
) -> Response:
    """Like ``/v1/query``, answered as it is generated (see the module docstring)."""
    await quotas.check(principal.name)
    turn = await turns.prepare(holder, store, body, principal.name)
    params = {"messages": turn.messages, "stream_options": {"include_usage": True}}
    chunks = holder.chat_stream(turn.model, params)
    # A new conversation's id (``start`` needs it): reserved in library mode (the conversation
    # is written with its turn once the answer is complete); a Llama Stack server's is made
    # while the model starts answering, and deleted again if the answer fails.
    created = asyncio.create_task(turns.conversation_of(store, turn))
    try:
        first = await anext(chunks, None)
    except BaseException:
        await chunks.aclose()
        with contextlib.suppress(Exception):
            await created
        await turns.discard(store, turn)
        raise
    try:
        conversation_id = await created
    except BaseException:
        await chunks.aclose()
        raise
    stream = _Stream(summaries, store, quotas, turn, first, chunks)
    headers = {"X-Conversation-ID": conversation_id}
    if body.media_type == "text/plain":
        return StreamingResponse(stream.text(), media_type="text/plain", headers=headers)
    request_id = str(getattr(request.state, "request_id", ""))
    # sse-starlette cuts its streams as soon as the server is told to stop; an answer in
    # flight may finish within the drain limit instead, as every other response does.
    drain = holder.config.service.shutdown_timeout_seconds
    return EventSourceResponse(
        stream.events(request_id), sep="\n", ping=15, headers=headers, shutdown_grace_period=drain
    )


@dataclass
class _Stream:
    summaries: TopicSummarizer
    store: ConversationStore
    quotas: QuotaLimiter
    turn: turns.PreparedTurn
    first: dict[str, Any] | None
    chunks: Chunks
    parts: list[str] = field(default_factory=list)
    usage: Any = None
    filtered: bool = False  # Azure's content filter cut the answer
    available: dict[str, int] = field(default_factory=dict)  # quotas left after the answer

    async def _texts(self) -> AsyncIterator[str]:
        """The answer's text pieces as they arrive; records the turn at the end."""
        try:
            chunk = self.first
            while chunk is not None:
                self.usage = chunk.get("usage") or self.usage
                for choice in chunk.get("choices") or []:
                    self.filtered |= choice.get("finish_reason") == turns.CONTENT_FILTERED
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        self.parts.append(text)
                        yield text
                chunk = await anext(self.chunks, None)
        except LlamaEntraError:
            await turns.discard(self.store, self.turn)
            raise
        finally:
            await self.chunks.aclose()
        await turns.finish(self.summaries, self.store, self.turn, "".join(self.parts))
        input_tokens, output_tokens = turns.usage_tokens(self.usage)
        self.available = await self.quotas.spend(self.turn.owner, input_tokens + output_tokens)

    async def events(self, request_id: str) -> AsyncIterator[dict[str, str]]:
        """The JSON event stream."""
        conversation_id = self.turn.conversation_id
        yield _event("start", {"conversation_id": conversation_id, "request_id": request_id})
        try:
            async for text in self._texts():
                yield _event("token", {"id": len(self.parts) - 1, "token": text})
        except LlamaEntraError as exc:
            status, body, _ = status_and_body(exc)
            yield _event("error", {"status_code": status, **body["detail"]})
            return
        yield _event("turn_complete", {"id": len(self.parts), "token": "".join(self.parts)})
        input_tokens, output_tokens = turns.usage_tokens(self.usage)
        end: dict[str, Any] = {
            "conversation_id": conversation_id,
            "referenced_documents": [],
            "truncated": False,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "content_filtered": self.filtered,
        }
        yield _event("end", end, available_quotas=self.available)

    async def text(self) -> AsyncIterator[str]:
        """The plain-text stream."""
        try:
            async for text in self._texts():
                yield text
        except LlamaEntraError as exc:
            status, body, _ = status_and_body(exc)
            detail = body["detail"]
            yield f"Status: {status} - {detail['response']} - {detail['cause']}"


def _event(name: str, data: dict[str, Any], **extra: Any) -> dict[str, str]:
    return {"data": json.dumps({"event": name, "data": data, **extra})}

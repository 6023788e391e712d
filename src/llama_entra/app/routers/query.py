"""``POST /v1/query``: a question, answered in one JSON body (lightspeed-stack's contract).

Inference goes through Llama Stack's chat completions (so an Azure 401 is seen and retried once
with a fresh token); turns are kept in the caller's Llama Stack conversation. Token quotas are
checked before the model is asked and charged with Azure's usage after it answered.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from llama_entra.app import turns
from llama_entra.app.deps import ConversationsDep, HolderDep, QuotasDep, SummariesDep, authorized
from llama_entra.app.schemas import ErrorResponse, QueryRequest, QueryResponse
from llama_entra.auth import Principal

__all__ = ["ERRORS", "router"]

router = APIRouter(tags=["query"])
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 403, 404, 413, 429, 502, 503)
}


@router.post("/v1/query", response_model=QueryResponse, responses=ERRORS)
async def query(
    body: QueryRequest,
    holder: HolderDep,
    store: ConversationsDep,
    summaries: SummariesDep,
    quotas: QuotasDep,
    principal: Annotated[Principal, Depends(authorized("query"))],
) -> QueryResponse:
    """Ask the model; continue ``conversation_id`` when given, else start a conversation.

    A caller whose token quota is used up gets 429 before the model is asked.
    """
    await quotas.check(principal.name)
    turn = await turns.prepare(holder, store, body, principal.name)
    completion = await holder.chat(turn.model, {"messages": turn.messages})
    answer = turns.answer_text(completion)
    conversation_id = await turns.finish(summaries, store, turn, answer)
    input_tokens, output_tokens = turns.usage_tokens(completion.get("usage"))
    available = await quotas.spend(principal.name, input_tokens + output_tokens)
    return QueryResponse(
        conversation_id=conversation_id,
        response=answer,
        model=turn.model.id,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        content_filtered=turns.content_filtered(completion),
        available_quotas=available,
    )

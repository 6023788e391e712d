"""Feedback on answers, lightspeed-stack's ``/v1/feedback`` routes.

``POST /v1/feedback`` stores a caller's thumbs up or down (sentiment, free text, categories) on
an answer of one of its own conversations, in the conversation index's database (SQLite in the
state dir, or the PostgreSQL database every replica shares); no route reads feedback back.
An unknown conversation, or another caller's, is 404 "Conversation not found" (lightspeed-stack
says 403 for another user's: here no caller learns that another's conversation exists). While
feedback is off (``feedback.enabled``, default false as in lightspeed-stack) it is 403
"Storing feedback is disabled". ``GET /v1/feedback/status`` says whether it is on (no
authentication, as there); ``PUT /v1/feedback/status`` (action ``admin``) turns it on or off
in this process until it restarts.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import JSONResponse

from llama_entra.app.deps import ConversationsDep, authorized
from llama_entra.app.errors import error_body
from llama_entra.app.schemas import ErrorResponse
from llama_entra.app.schemas.feedback import (
    FeedbackRequest,
    FeedbackResponse,
    FeedbackStatusResponse,
    FeedbackStatusUpdateRequest,
    FeedbackStatusUpdateResponse,
)
from llama_entra.auth import Principal
from llama_entra.conversations.index import Feedback

__all__ = ["router"]

router = APIRouter(tags=["feedback"])
_DISABLED = "Storing feedback is disabled"
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (401, 403, 404, 503)
}


def _enabled(request: Request) -> bool:
    return bool(request.app.state.feedback_enabled)


@router.post("/v1/feedback", response_model=FeedbackResponse, responses=_ERRORS)
async def store_feedback(
    body: FeedbackRequest,
    request: Request,
    store: ConversationsDep,
    caller: Annotated[Principal, Depends(authorized("feedback"))],
) -> Any:
    """Store the caller's feedback on an answer of its conversation ``conversation_id``."""
    if not _enabled(request):
        return JSONResponse(error_body(_DISABLED, f"{_DISABLED}."), status_code=403)
    conversation_id = await store.open(body.conversation_id, caller.name)
    await store.index.add_feedback(
        Feedback(
            id=str(uuid.uuid4()),
            owner=caller.name,
            conversation_id=conversation_id,
            created_at=time.time(),
            sentiment=body.sentiment,
            user_feedback=body.user_feedback,
            categories=json.dumps([str(c) for c in body.categories]) if body.categories else None,
            user_question=body.user_question,
            llm_response=body.llm_response,
        )
    )
    return FeedbackResponse(response="feedback received")


@router.get("/v1/feedback/status")
async def feedback_status(request: Request) -> FeedbackStatusResponse:
    """Whether feedback is accepted."""
    return FeedbackStatusResponse(functionality="feedback", status={"enabled": _enabled(request)})


@router.put("/v1/feedback/status", responses=_ERRORS)
async def update_feedback_status(
    body: FeedbackStatusUpdateRequest,
    request: Request,
    caller: Annotated[Principal, Depends(authorized("admin"))],
) -> FeedbackStatusUpdateResponse:
    """Turn feedback on or off in this process (until it restarts)."""
    previous = _enabled(request)
    request.app.state.feedback_enabled = body.status
    return FeedbackStatusUpdateResponse(
        status={
            "previous_status": previous,
            "updated_status": body.status,
            "updated_by": caller.name,
            "timestamp": datetime.now(UTC).isoformat(),
        }
    )

"""The conversations API of lightspeed-stack, v1 and v2, over Llama Stack's conversation store.

``GET /v{1,2}/conversations`` lists the caller's conversations (v1: details, v2: id, topic and
last message time), ``GET .../{id}`` returns its turns, ``DELETE .../{id}`` deletes it,
``PUT .../{id}`` sets its topic summary. Ids are ``conv_`` + 48 hex, 48 hex or UUIDs; a
malformed id is 400 (as in lightspeed-stack), an unknown one or another caller's 404
"Conversation not found" (delete: 200 with ``deleted: false``). No call needs Azure.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from llama_entra.app.deps import ConversationsDep, authorized
from llama_entra.app.schemas import (
    ConversationData,
    ConversationDeleteResponse,
    ConversationDetails,
    ConversationResponse,
    ConversationsListResponse,
    ConversationsListResponseV2,
    ConversationTurn,
    ConversationUpdateRequest,
    ConversationUpdateResponse,
    ErrorResponse,
)
from llama_entra.auth import Principal
from llama_entra.conversations import ConversationStore, iso
from llama_entra.errors import ConversationNotFoundError

__all__ = ["router"]

router = APIRouter(tags=["conversations"])
Caller = Annotated[Principal, Depends(authorized("conversations"))]
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 403, 404, 503)
}


@router.get("/v1/conversations", responses=_ERRORS)
async def list_conversations(store: ConversationsDep, caller: Caller) -> ConversationsListResponse:
    """The caller's conversations, most recently used first."""
    rows = await store.listed(caller.name)
    return ConversationsListResponse(
        conversations=[
            ConversationDetails(
                conversation_id=row.id,
                created_at=iso(row.created_at),
                last_message_at=iso(row.last_message_at) if row.last_message_at else None,
                message_count=row.message_count,
                last_used_model=row.last_used_model,
                last_used_provider=row.last_used_provider,
                topic_summary=row.topic_summary,
            )
            for row in rows
        ]
    )


@router.get("/v2/conversations", responses=_ERRORS)
async def list_conversations_v2(
    store: ConversationsDep, caller: Caller
) -> ConversationsListResponseV2:
    """The caller's conversations (v2 shape), most recently used first."""
    rows = await store.listed(caller.name)
    return ConversationsListResponseV2(
        conversations=[
            ConversationData(
                conversation_id=row.id,
                topic_summary=row.topic_summary,
                last_message_timestamp=row.last_message_at or row.created_at,
            )
            for row in rows
        ]
    )


@router.get(
    "/v1/conversations/{conversation_id}",
    responses=_ERRORS,
    operation_id="get_conversation_v1",
)
@router.get(
    "/v2/conversations/{conversation_id}",
    responses=_ERRORS,
    operation_id="get_conversation_v2",
)
async def get_conversation(
    conversation_id: str, store: ConversationsDep, caller: Caller
) -> ConversationResponse:
    """The conversation's turns, oldest first."""
    found = await store.open(conversation_id, caller.name, in_path=True)
    return ConversationResponse(conversation_id=found, chat_history=await _history(store, found))


async def _history(store: ConversationStore, conversation_id: str) -> list[ConversationTurn]:
    indexed = await store.indexed(conversation_id)
    recorded = await store.indexed_turns(conversation_id)
    fallback = iso(indexed.created_at) if indexed else ""
    history = []
    for number, turn in enumerate(await store.turns(conversation_id)):
        known = recorded[number] if number < len(recorded) else None
        history.append(
            ConversationTurn.model_validate(
                {
                    "messages": turn.messages,
                    "tool_calls": turn.tool_calls,
                    "tool_results": turn.tool_results,
                    "provider": known.provider if known else "",
                    "model": known.model if known else "",
                    "started_at": iso(known.started_at) if known else fallback,
                    "completed_at": iso(known.completed_at) if known else fallback,
                }
            )
        )
    return history


@router.delete(
    "/v1/conversations/{conversation_id}",
    responses=_ERRORS,
    operation_id="delete_conversation_v1",
)
@router.delete(
    "/v2/conversations/{conversation_id}",
    responses=_ERRORS,
    operation_id="delete_conversation_v2",
)
async def delete_conversation(
    conversation_id: str, store: ConversationsDep, caller: Caller
) -> ConversationDeleteResponse:
    """Delete the conversation; an unknown one (or another caller's) answers ``deleted: false``."""
    try:
        found = await store.open(conversation_id, caller.name, in_path=True)
        await store.delete(found)
    except ConversationNotFoundError:
        return ConversationDeleteResponse(
            conversation_id=conversation_id,
            success=True,  # the call succeeded; there was nothing to delete (lightspeed's body)
            deleted=False,
            response="Conversation not found",
        )
    return ConversationDeleteResponse(
        conversation_id=found,
        success=True,
        deleted=True,
        response="Conversation deleted successfully",
    )


@router.put(
    "/v1/conversations/{conversation_id}",
    responses=_ERRORS,
    operation_id="update_conversation_v1",
)
@router.put(
    "/v2/conversations/{conversation_id}",
    responses=_ERRORS,
    operation_id="update_conversation_v2",
)
async def update_conversation(
    conversation_id: str,
    body: ConversationUpdateRequest,
    store: ConversationsDep,
    caller: Caller,
) -> ConversationUpdateResponse:
    """Set the conversation's topic summary."""
    found = await store.open(conversation_id, caller.name, in_path=True)
    await store.set_topic(found, body.topic_summary)
    return ConversationUpdateResponse(
        conversation_id=found, success=True, message="Topic summary updated successfully"
    )

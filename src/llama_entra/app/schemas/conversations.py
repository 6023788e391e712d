"""Bodies of the conversations API (``/v1/conversations``, ``/v2/conversations``), as
lightspeed-stack defines them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ConversationData",
    "ConversationDeleteResponse",
    "ConversationDetails",
    "ConversationResponse",
    "ConversationTurn",
    "ConversationUpdateRequest",
    "ConversationUpdateResponse",
    "ConversationsListResponse",
    "ConversationsListResponseV2",
    "Message",
]


class ConversationDetails(BaseModel):
    """One of the caller's conversations (v1 list)."""

    conversation_id: str
    created_at: str | None = None
    last_message_at: str | None = None
    message_count: int | None = Field(None, description="Number of questions asked.")
    last_used_model: str | None = None
    last_used_provider: str | None = None
    topic_summary: str | None = None


class ConversationsListResponse(BaseModel):
    """The caller's conversations, most recently used first."""

    conversations: list[ConversationDetails]


class ConversationData(BaseModel):
    """One of the caller's conversations (v2 list)."""

    conversation_id: str
    topic_summary: str | None
    last_message_timestamp: float


class ConversationsListResponseV2(BaseModel):
    """The caller's conversations (v2), most recently used first."""

    conversations: list[ConversationData]


class Message(BaseModel):
    """One message of a turn."""

    content: str
    type: Literal["user", "assistant", "system", "developer"]
    referenced_documents: list[dict[str, Any]] | None = None


class ConversationTurn(BaseModel):
    """A question, its answer, and the tools used between them."""

    messages: list[Message] = Field(default_factory=list)
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    tool_results: list[dict[str, Any]] = Field(default_factory=list)
    provider: str
    model: str
    started_at: str
    completed_at: str


class ConversationResponse(BaseModel):
    """A conversation's history as turns."""

    conversation_id: str
    chat_history: list[ConversationTurn]


class ConversationDeleteResponse(BaseModel):
    """What deleting a conversation did."""

    conversation_id: str
    success: bool
    deleted: bool
    response: str


class ConversationUpdateRequest(BaseModel):
    """A new topic summary."""

    model_config = ConfigDict(extra="forbid")

    topic_summary: str = Field(min_length=1, max_length=1000)


class ConversationUpdateResponse(BaseModel):
    """What updating a conversation did."""

    conversation_id: str
    success: bool
    message: str

"""Request and response bodies of the REST API (field names as lightspeed-stack uses them)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ChatCompletionRequest",
    "ErrorDetail",
    "ErrorResponse",
    "QueryRequest",
    "QueryResponse",
    "ResponsesRequest",
]

_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"


class QueryRequest(BaseModel):
    """A question for the model, optionally continuing a conversation."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=100_000, description="The user's question.")
    model: str | None = Field(
        None, max_length=256, description="Model id (`provider/model` or plain); default if unset."
    )
    provider: str | None = Field(None, max_length=128, description="Provider id of the model.")
    system_prompt: str | None = Field(
        None, max_length=100_000, description="Instructions placed before the conversation."
    )
    conversation_id: str | None = Field(
        None, pattern=_ID_PATTERN, description="Continue this conversation (404 if unknown)."
    )


class QueryResponse(BaseModel):
    """The model's answer and where the conversation continues."""

    conversation_id: str
    response: str
    model: str
    input_tokens: int
    output_tokens: int


class ChatCompletionRequest(BaseModel):
    """OpenAI chat completion request; fields beyond these are passed to Llama Stack as-is."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=256)
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool = False


class ResponsesRequest(BaseModel):
    """OpenAI Responses API request; other fields are passed to Llama Stack as-is."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=256)
    input: str | list[dict[str, Any]]
    stream: bool = False


class ErrorDetail(BaseModel):
    """What went wrong (``response``) and why (``cause``)."""

    response: str
    cause: str


class ErrorResponse(BaseModel):
    """The body of every error answer."""

    detail: ErrorDetail

"""Bodies of the OpenAI-compatible routes and the error bodies every route documents."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BothErrorResponse",
    "ChatCompletionRequest",
    "ErrorDetail",
    "ErrorResponse",
    "OpenAIError",
    "OpenAIErrorResponse",
    "ResponsesRequest",
]


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
    """The body of an error answer on lightspeed-stack's routes."""

    detail: ErrorDetail


class OpenAIError(BaseModel):
    """OpenAI's error object."""

    message: str
    type: str
    code: str | None = None
    param: str | None = None


class OpenAIErrorResponse(BaseModel):
    """The body of an error answer on the OpenAI-compatible routes."""

    error: OpenAIError


class BothErrorResponse(BaseModel):
    """An error body readable by lightspeed-stack and OpenAI clients alike (``/v1/models``)."""

    detail: ErrorDetail
    error: OpenAIError

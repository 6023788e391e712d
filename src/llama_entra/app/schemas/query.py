"""``/v1/query`` and ``/v1/streaming_query`` bodies, as lightspeed-stack defines them.

Every field of lightspeed-stack's ``QueryRequest`` is accepted; README ("lightspeed-stack
clients") says what each does here. Unknown fields are still 422, as there.
"""

from __future__ import annotations

import json
from typing import Any, Self
from xml.parsers import expat

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from llama_entra.app.schemas.images import (
    IMAGE_CONTENT_TYPES,
    MAX_IMAGE_BYTES,
    base64_length,
    check_image,
)
from llama_entra.backends.conversation_ids import valid_conversation_id

__all__ = ["ATTACHMENT_TYPES", "Attachment", "QueryRequest", "QueryResponse", "ReferencedDocument"]

ATTACHMENT_TYPES = (
    "alert",
    "api object",
    "configuration",
    "error message",
    "event",
    "image",
    "log",
    "stack trace",
)
TEXT_CONTENT_TYPES = ("text/plain", "application/json", "application/yaml", "application/xml")
CONTENT_TYPES = (*TEXT_CONTENT_TYPES, *IMAGE_CONTENT_TYPES)
MAX_TEXT_ATTACHMENT_CHARS = 100_000
MEDIA_TYPES = ("application/json", "text/plain")


class Attachment(BaseModel):
    """A text attachment (a log, a configuration, ...) that goes into the prompt, or an image
    (``attachment_type: image``, base64 PNG, JPEG, GIF or WebP) the model sees as image input."""

    model_config = ConfigDict(extra="forbid")

    attachment_type: str = Field(
        description=f"What it is: one of {', '.join(ATTACHMENT_TYPES)}.", examples=["log"]
    )
    content_type: str = Field(
        description=f"Its MIME type: one of {', '.join(CONTENT_TYPES)}.",
        examples=["text/plain"],
    )
    content: str = Field(
        min_length=1,
        max_length=base64_length(MAX_IMAGE_BYTES),
        description="The text (must parse as its type; at most 100,000 characters), or the "
        "image's bytes in base64.",
    )

    @field_validator("attachment_type")
    @classmethod
    def _known_attachment_type(cls, value: str) -> str:
        if value not in ATTACHMENT_TYPES:
            raise ValueError(
                f"Invalid attachment type {value!r}: must be one of {list(ATTACHMENT_TYPES)}"
            )
        return value

    @field_validator("content_type")
    @classmethod
    def _known_content_type(cls, value: str) -> str:
        if value not in CONTENT_TYPES:
            raise ValueError(
                f"Invalid attachment content type {value!r}: must be one of {list(CONTENT_TYPES)}"
            )
        return value

    @model_validator(mode="after")
    def _content_matches_type(self) -> Self:
        # lightspeed-stack's checks and messages for images (models/common/query.py), then
        # llama-entra's own for text.
        if (self.attachment_type == "image") != (self.content_type in IMAGE_CONTENT_TYPES):
            raise ValueError(
                "attachment_type and content_type are inconsistent: "
                f"attachment_type='{self.attachment_type}', content_type='{self.content_type}'"
            )
        if self.attachment_type == "image":
            check_image(self.content, self.content_type)
            return self
        if len(self.content) > MAX_TEXT_ATTACHMENT_CHARS:
            raise ValueError(
                f"attachment content is longer than {MAX_TEXT_ATTACHMENT_CHARS} characters"
            )
        problem = _parse_problem(self.content_type, self.content)
        if problem:
            raise ValueError(f"attachment content is not valid {self.content_type}: {problem}")
        return self

    def data_url(self) -> str:
        """An image attachment as a ``data:`` URL, the way chat completions take images."""
        return f"data:{self.content_type};base64,{self.content}"


def _parse_problem(content_type: str, content: str) -> str | None:
    """Why ``content`` is not ``content_type`` (None when it is)."""
    try:
        if content_type == "application/json":
            json.loads(content)
        elif content_type == "application/yaml":
            yaml.safe_load(content)
        elif content_type == "application/xml":
            _parse_xml(content)
    except (ValueError, yaml.YAMLError, expat.ExpatError) as exc:
        return (str(exc).splitlines() or [type(exc).__name__])[0][:200]
    return None


def _parse_xml(content: str) -> None:
    """Check well-formedness; entity declarations are refused (no entity expansion at all)."""

    def refuse(*_: object) -> None:
        raise ValueError("entity declarations are not accepted")

    parser = expat.ParserCreate()
    parser.EntityDeclHandler = refuse
    parser.Parse(content, True)


class QueryRequest(BaseModel):
    """A question for the model, optionally continuing a conversation (lightspeed's fields)."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=100_000, description="The user's question.")
    conversation_id: str | None = Field(
        None,
        max_length=128,
        description="Continue this conversation: conv_ + 48 hex, 48 hex, or a UUID (404 if "
        "unknown or another caller's).",
    )
    provider: str | None = Field(
        None, max_length=128, description="Provider of `model`; required with `model`."
    )
    model: str | None = Field(
        None, max_length=256, description="Model id; required with `provider`; default if unset."
    )
    system_prompt: str | None = Field(
        None, max_length=100_000, description="Instructions placed before the conversation."
    )
    attachments: list[Attachment] | None = Field(
        None,
        max_length=50,
        description="Text attachments, added to the question; images, sent to the model with it.",
    )
    no_tools: bool | None = Field(
        False, description="Accepted; no tools or MCP servers are used here in any case."
    )
    generate_topic_summary: bool | None = Field(
        True, description="Summarise the topic of a new conversation (one more model call)."
    )
    media_type: str | None = Field(
        None,
        description="Streaming answer format: application/json (events) or text/plain (text).",
    )
    vector_store_ids: list[str] | None = Field(
        None, description="Accepted and ignored: no RAG here (see README)."
    )
    shield_ids: list[str] | None = Field(
        None, description="Accepted and ignored: no shields here (see README)."
    )
    solr: dict[str, Any] | None = Field(
        None, description="Accepted and ignored: no Solr RAG here (see README)."
    )

    @field_validator("conversation_id")
    @classmethod
    def _conversation_id_format(cls, value: str | None) -> str | None:
        if value and not valid_conversation_id(value):
            raise ValueError(f"Improper conversation ID '{value}'")
        return value

    @model_validator(mode="after")
    def _provider_with_model(self) -> Self:
        if self.model and not self.provider:
            raise ValueError("Provider must be specified if model is specified")
        if self.provider and not self.model:
            raise ValueError("Model must be specified if provider is specified")
        return self

    @model_validator(mode="after")
    def _known_media_type(self) -> Self:
        if self.media_type and self.media_type not in MEDIA_TYPES:
            raise ValueError("media_type must be either 'application/json' or 'text/plain'")
        return self

    def prompt(self) -> str:
        """The question with its attachments appended, each fenced and labelled; an image is
        named by its label only (its bytes go to the model as an image part, ``images``)."""
        parts = [self.query]
        for attachment in self.attachments or []:
            label = f"\n\n[Attachment: {attachment.attachment_type} ({attachment.content_type})]"
            if attachment.attachment_type == "image":
                parts.append(label)
            else:
                parts.append(f"{label}\n```\n{attachment.content}\n```")
        return "".join(parts)

    def images(self) -> list[Attachment]:
        """The image attachments, in order."""
        return [a for a in self.attachments or [] if a.attachment_type == "image"]


class ReferencedDocument(BaseModel):
    """A document the answer used (never filled here: no RAG)."""

    doc_url: str | None = None
    doc_title: str | None = None


class QueryResponse(BaseModel):
    """The model's answer and where the conversation continues (lightspeed's fields)."""

    conversation_id: str
    response: str
    model: str = Field(description="The model that answered (`provider/model`).")
    input_tokens: int
    output_tokens: int
    referenced_documents: list[ReferencedDocument] = Field(default_factory=list)
    truncated: bool = Field(False, description="Always false: llama-entra never cuts history.")
    content_filtered: bool = Field(
        False,
        description="Azure's content filter cut the answer (finish_reason content_filter); "
        "`response` is what Azure produced before it.",
    )
    available_quotas: dict[str, int] = Field(
        default_factory=dict,
        description="What each token quota (`quota_handlers` limiter, by name) has left after "
        "this answer; empty without limiters.",
    )
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    tool_results: list[dict[str, Any]] = Field(default_factory=list)
    rag_chunks: list[dict[str, Any]] = Field(default_factory=list)

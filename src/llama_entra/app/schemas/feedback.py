"""Bodies of ``/v1/feedback`` and ``/v1/feedback/status``, as lightspeed-stack defines them.

Field names, the categories and the validation messages are lightspeed-stack's
(``models/api/requests/feedback.py``, ``models/common/feedback.py``), so its UIs' thumbs up
and down work unchanged.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from llama_entra.backends.conversation_ids import valid_conversation_id

__all__ = [
    "FeedbackCategory",
    "FeedbackRequest",
    "FeedbackResponse",
    "FeedbackStatusResponse",
    "FeedbackStatusUpdateRequest",
    "FeedbackStatusUpdateResponse",
]


class FeedbackCategory(StrEnum):
    """What was good or wrong about an answer (lightspeed's negative and positive categories)."""

    INCORRECT = "incorrect"
    NOT_RELEVANT = "not_relevant"
    INCOMPLETE = "incomplete"
    OUTDATED_INFORMATION = "outdated_information"
    UNSAFE = "unsafe"
    OTHER = "other"
    HELPFUL = "helpful"
    ACCURATE = "accurate"
    CLEAR = "clear"
    RELEVANT = "relevant"
    ACTIONABLE = "actionable"
    RESOLVED_ISSUE = "resolved_issue"


class FeedbackRequest(BaseModel):
    """A caller's feedback on one answer of one of its conversations."""

    model_config = ConfigDict(extra="forbid")

    conversation_id: str = Field(
        max_length=128, description="The conversation the answer belongs to (the caller's own)."
    )
    user_question: str = Field(max_length=100_000, description="The question asked.")
    llm_response: str = Field(max_length=1_000_000, description="The answer given.")
    sentiment: int | None = Field(None, description="1 (thumbs up) or -1 (thumbs down).")
    user_feedback: str | None = Field(
        None, max_length=4096, description="Free text about the answer."
    )
    categories: list[FeedbackCategory] | None = Field(
        None, max_length=32, description="What was good or wrong; duplicates are dropped."
    )

    @field_validator("conversation_id")
    @classmethod
    def _conversation_id_format(cls, value: str) -> str:
        if not valid_conversation_id(value):
            raise ValueError(f"Improper conversation ID {value}")
        return value

    @field_validator("sentiment")
    @classmethod
    def _sentiment_is_a_thumb(cls, value: int | None) -> int | None:
        if value not in (-1, 1, None):
            raise ValueError(f"Improper sentiment value of {value}, needs to be -1 or 1")
        return value

    @field_validator("categories")
    @classmethod
    def _categories_once_each(
        cls, value: list[FeedbackCategory] | None
    ) -> list[FeedbackCategory] | None:
        return list(dict.fromkeys(value)) if value else None

    @model_validator(mode="after")
    def _some_feedback(self) -> Self:
        if self.sentiment is None and not self.user_feedback and self.categories is None:
            raise ValueError(
                "At least one form of feedback must be provided: "
                "'sentiment', 'user_feedback', or 'categories'"
            )
        return self


class FeedbackResponse(BaseModel):
    """What storing the feedback did."""

    response: str = Field(examples=["feedback received"])


class FeedbackStatusResponse(BaseModel):
    """Whether feedback is accepted (lightspeed's ``StatusResponse``)."""

    functionality: str = Field(examples=["feedback"])
    status: dict[str, Any] = Field(examples=[{"enabled": True}])


class FeedbackStatusUpdateRequest(BaseModel):
    """Turn feedback on or off in this process."""

    model_config = ConfigDict(extra="forbid")

    status: bool = Field(False, description="Accept feedback from now on.")


class FeedbackStatusUpdateResponse(BaseModel):
    """The change made: ``previous_status``, ``updated_status``, ``updated_by``, ``timestamp``."""

    status: dict[str, Any]

"""``quota_handlers``: token quotas per caller and for the whole service.

The shape of lightspeed-stack's ``quota_handlers`` section, so its limiters carry over: a list
of limiters, each ``user_limiter`` (one count per caller) or ``cluster_limiter`` (one count for
the service), with ``initial_quota``, ``quota_increase`` and a ``period`` such as ``1 day``.
The counts live in the conversation index's database (``conversation_index``), so the section
has no database of its own; ``scheduler`` is accepted and unused, because a period turns when
the clock says so (``llama_entra.quotas.periods``), not when a background job runs.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, NonNegativeInt, PositiveInt, field_validator, model_validator

from llama_entra.config.base import StrictModel

__all__ = [
    "PERIOD_UNITS",
    "QuotaHandlersConfig",
    "QuotaLimiterConfig",
    "QuotaSchedulerConfig",
    "parse_period",
]

# Seconds per unit; months and years follow the calendar (0 here), in UTC.
PERIOD_UNITS: dict[str, int] = {
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "week": 7 * 86400,
    "month": 0,
    "year": 0,
}
_ABBREVIATIONS = {"sec": "second", "min": "minute", "mon": "month"}
_PERIOD = re.compile(r"^\s*(\d+)?\s*([a-z]+?)s?\s*$")


def parse_period(text: str) -> tuple[int, str]:
    """``"2 hours"`` -> ``(2, "hour")``: a count and a unit of ``PERIOD_UNITS``.

    PostgreSQL's interval words (``second`` ... ``year``, singular or plural, ``sec``, ``min``,
    ``mon``), one unit per period, as lightspeed-stack's examples write them. Raises
    ``ValueError`` otherwise.
    """
    match = _PERIOD.match(text.lower())
    unit = _ABBREVIATIONS.get(match.group(2), match.group(2)) if match else ""
    if match is None or unit not in PERIOD_UNITS:
        raise ValueError(
            f"period {text!r} is not a count and a unit (one of {', '.join(PERIOD_UNITS)}), "
            "e.g. '1 day'"
        )
    count = int(match.group(1) or 1)
    if count < 1:
        raise ValueError(f"period {text!r} must be at least one {unit}")
    return count, unit


class QuotaLimiterConfig(StrictModel):
    """One quota: tokens (prompt plus completion, as Azure counts them) per period."""

    type: Literal["user_limiter", "cluster_limiter"] = Field(
        description="user_limiter: one count per caller (its user id); cluster_limiter: one "
        "count shared by every caller of every replica."
    )
    name: str = Field(
        min_length=1,
        max_length=128,
        description="The limiter's name: the key of `available_quotas` in answers, and the "
        "label of its metrics.",
    )
    initial_quota: NonNegativeInt = Field(
        description="Tokens a count starts with; when above 0, each new period resets the count "
        "to it (plus `quota_increase`)."
    )
    quota_increase: NonNegativeInt = Field(
        0,
        description="Tokens added at each new period (with `initial_quota` 0: added to what "
        "is left, once per period passed).",
    )
    period: str = Field(
        description="How long a period lasts: a count and a unit (second, minute, hour, day, "
        "week, month, year), e.g. `1 day`. Periods are aligned to the clock in UTC (a day "
        "starts at midnight), the same on every replica."
    )

    @field_validator("period")
    @classmethod
    def _known_period(cls, value: str) -> str:
        parse_period(value)
        return value


class QuotaSchedulerConfig(StrictModel):
    """lightspeed-stack's scheduler settings, accepted so its configs load; unused here."""

    period: PositiveInt = Field(1, description="Unused: periods turn with the clock.")
    database_reconnection_count: PositiveInt = Field(10, description="Unused.")
    database_reconnection_delay: PositiveInt = Field(1, description="Unused.")


class QuotaHandlersConfig(StrictModel):
    """Token quotas, counted in the conversation index's database (SQLite or PostgreSQL)."""

    limiters: list[QuotaLimiterConfig] = Field(
        default_factory=list,
        description="The quotas; a request is refused (429) when any of them has nothing left.",
    )
    scheduler: QuotaSchedulerConfig = Field(
        default_factory=QuotaSchedulerConfig,
        description="Accepted for lightspeed-stack configs; unused.",
    )
    enable_token_history: bool = Field(
        False, description="lightspeed-stack's token history table; not kept here (false only)."
    )

    @model_validator(mode="before")
    @classmethod
    def _no_database_of_its_own(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("sqlite", "postgres"):
                if data.get(key) is not None:
                    raise ValueError(
                        f"{key}: quota counts are kept in the conversation index's database; "
                        "configure conversation_index instead"
                    )
            data = {k: v for k, v in data.items() if k not in ("sqlite", "postgres")}
        return data

    @model_validator(mode="after")
    def _valid(self) -> QuotaHandlersConfig:
        if self.enable_token_history:
            raise ValueError("enable_token_history: token history is not kept by llama-entra")
        names = [limiter.name for limiter in self.limiters]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"limiter names must be unique: {', '.join(duplicates)}")
        return self

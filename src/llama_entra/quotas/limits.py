"""A quota limiter as configured, and how its count moves from one period to the next.

lightspeed-stack's rules: a count starts at ``initial_quota``; when a period ends, a limiter
with ``initial_quota`` above 0 is reset to ``initial_quota + quota_increase``, and one with
``initial_quota`` 0 gets ``quota_increase`` added (once for every period that passed while
nobody looked). Requests spend prompt plus completion tokens; a count may go below zero by what
requests already under way spend, and answers show it as 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from llama_entra.config import QuotaLimiterConfig
from llama_entra.quotas.periods import Period

__all__ = ["Count", "Limiter"]


@dataclass(frozen=True, slots=True)
class Count:
    """What is left of one limiter for one subject, and since when (its period's start).

    The start, not the period's number, is stored: a period changed in the configuration
    still sees whether the stored count belongs to an earlier period.
    """

    available: int
    since: float


@dataclass(frozen=True, slots=True)
class Limiter:
    """One configured limiter."""

    name: str
    kind: Literal["user", "cluster"]
    initial: int
    increase: int
    period: Period

    @classmethod
    def of(cls, config: QuotaLimiterConfig) -> Limiter:
        """The limiter ``config`` describes."""
        return cls(
            name=config.name,
            kind="user" if config.type == "user_limiter" else "cluster",
            initial=config.initial_quota,
            increase=config.quota_increase,
            period=Period.parse(config.period),
        )

    def subject(self, user_id: str) -> str:
        """Whose count a request of ``user_id`` uses ("" is the service's)."""
        return user_id if self.kind == "user" else ""

    def current(self, stored: Count | None, now: float) -> Count:
        """The count at ``now``, from the one stored (None: never counted yet)."""
        window = self.period.index(now)
        since = self.period.start(window)
        if stored is None:
            return Count(self.initial, since)
        passed = window - self.period.index(stored.since)
        if passed <= 0:
            return stored
        if self.initial > 0:
            return Count(self.initial + self.increase, since)
        return Count(stored.available + self.increase * passed, since)

    def seconds_left(self, now: float) -> int:
        """Whole seconds until the current period ends (at least 1)."""
        end = self.period.start(self.period.index(now) + 1)
        return max(1, int(end - now + 0.999))

    def exceeded(self, subject: str) -> str:
        """lightspeed-stack's cause for a count with nothing left: its ``QuotaExceedError``'s
        message (no full stop, unlike the examples of its ``QuotaExceededResponse``)."""
        if self.kind == "cluster":
            return "Cluster has no available tokens"
        return f"User {subject} has no available tokens"

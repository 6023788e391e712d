"""Quota periods aligned to the clock, so every replica agrees on when one turns.

A period of ``N`` units is one of the consecutive windows ``[start, start + N units)`` counted
from a fixed origin in UTC: midnight for days, Monday midnight for weeks, the first of the month
for months and years. ``index(moment)`` numbers the window a moment falls in; a count stored
with the index of its window is stale exactly when ``index(now)`` is larger, whichever replica
looks first, so no replica resets twice and none needs a scheduler.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from llama_entra.config import parse_period
from llama_entra.config.quotas import PERIOD_UNITS

__all__ = ["Period"]

_MONDAY = 4 * 86400  # 1970-01-05, the first Monday after the epoch


@dataclass(frozen=True, slots=True)
class Period:
    """``count`` ``unit``s (a unit of ``PERIOD_UNITS``)."""

    count: int
    unit: str

    @classmethod
    def parse(cls, text: str) -> Period:
        """``"1 day"`` as a ``Period``; ``ValueError`` when it is not one."""
        return cls(*parse_period(text))

    def index(self, moment: float) -> int:
        """The number of the window ``moment`` (seconds since the epoch) falls in."""
        months = self._months()
        if months:
            when = datetime.fromtimestamp(moment, UTC)
            return ((when.year - 1970) * 12 + when.month - 1) // months
        return math.floor((moment - self._origin()) / self._seconds())

    def start(self, index: int) -> float:
        """When window ``index`` begins (seconds since the epoch)."""
        months = self._months()
        if months:
            month = index * months
            return datetime(1970 + month // 12, month % 12 + 1, 1, tzinfo=UTC).timestamp()
        return self._origin() + index * self._seconds()

    def _months(self) -> int:
        return {"month": 1, "year": 12}.get(self.unit, 0) * self.count

    def _seconds(self) -> int:
        return PERIOD_UNITS[self.unit] * self.count

    def _origin(self) -> int:
        return _MONDAY if self.unit == "week" else 0

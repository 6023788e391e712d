"""``QuotaLimiter``: the check before a model call and the spending after it.

``check(user_id)`` raises ``QuotaExceededError`` when any limiter of the caller (or the
service) has nothing left, before anything is sent to Azure; ``spend(user_id, tokens)`` takes
the tokens Azure's ``usage`` reports from every limiter once the answer is complete. Both
answer ``available_quotas``: each limiter's name and what is left (never below 0).

A check and the spending after it are separate transactions, as in lightspeed-stack: requests
checked while others are still being answered may pass on the same remainder, so a quota is
overspent at most by what the requests already in flight spend.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

from llama_entra.config import QuotaHandlersConfig
from llama_entra.errors import DatabaseUnavailableError, QuotaExceededError
from llama_entra.quotas.limits import Count, Limiter
from llama_entra.quotas.store import QuotaStore

__all__ = ["QuotaLimiter"]

logger = logging.getLogger(__name__)


class QuotaLimiter:
    """The configured limiters over ``store`` (no limiters: every call answers ``{}``)."""

    def __init__(
        self,
        config: QuotaHandlersConfig,
        store: QuotaStore | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limiters = [Limiter.of(limiter) for limiter in config.limiters]
        self.store = store
        self._clock = clock
        self.tokens_spent = 0  # for metrics
        self.refused: Counter[str] = Counter()  # requests refused, by limiter

    @property
    def enabled(self) -> bool:
        """Whether any limiter is configured."""
        return bool(self.limiters) and self.store is not None

    async def check(self, user_id: str) -> dict[str, int]:
        """``available_quotas`` now; ``QuotaExceededError`` if any limiter has nothing left."""
        counts = await self._settle(user_id, 0)
        for limiter in self.limiters:
            if counts[limiter.name].available <= 0:
                self.refused[limiter.name] += 1
                raise QuotaExceededError(
                    limiter.name,
                    limiter.exceeded(limiter.subject(user_id)),
                    limiter.seconds_left(self._clock()),
                )
        return _available(counts)

    async def spend(self, user_id: str, tokens: int) -> dict[str, int]:
        """Take ``tokens`` from every limiter of ``user_id``; ``available_quotas`` after it.

        The answer is already complete: a database lost meanwhile is logged, the tokens go
        uncounted and ``{}`` is answered, rather than the answer being lost.
        """
        tokens = max(0, tokens)
        try:
            counts = await self._settle(user_id, tokens)
        except DatabaseUnavailableError as exc:
            logger.warning("%d tokens not counted against the quotas: %s", tokens, exc)
            return {}
        if counts:
            self.tokens_spent += tokens
        return _available(counts)

    async def _settle(self, user_id: str, spend: int) -> dict[str, Count]:
        if not self.enabled or self.store is None:
            return {}
        return await self.store.settle(self.limiters, user_id, spend, self._clock())


def _available(counts: dict[str, Count]) -> dict[str, int]:
    return {name: max(0, count.available) for name, count in counts.items()}

"""The one retry policy for Azure's 429, applied by exactly one layer per path.

Azure answers 429 with the wait it wants (``retry-after``). ``RateLimitRetry.run`` calls
Azure again after that wait while both limits of ``azure_entra_id.retries`` allow it: at most
``max_retries`` more calls, and at most ``max_wait_seconds`` slept in all for one caller
request. A wait that does not fit is not slept through: the 429 goes to the caller at once,
with Azure's wait in ``Retry-After``. A 429 that carries no wait is not retried (nothing says
when Azure will take it). Only 429s are retried: Azure has not billed them. Nothing that may
have reached the model (a 5xx, a timeout, a dropped connection) is sent again.

Who applies it, so that no layer retries what another already did (README, "Azure's answers"):
library mode, the service's client holder (Llama Stack's ``remote::azure`` adapters get
``max_retries=0``); the ``remote::azure-entra`` provider, itself (its errors are ``final``);
service mode, the Llama Stack server (the service never retries a server's 429).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from llama_entra.config import AzureRetryPolicy
from llama_entra.errors import AzureThrottledError

__all__ = ["RateLimitRetry"]

logger = logging.getLogger(__name__)


class RateLimitRetry:
    """Runs a call to Azure under the policy; counts what it retried and what it gave up."""

    def __init__(
        self,
        policy: AzureRetryPolicy,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.policy = policy
        self._sleep = sleep
        self.retries = 0  # calls made again after Azure's wait
        self.passed_on = 0  # 429s given to the caller (policy exhausted or wait too long)

    async def run[T](self, attempt: Callable[[], Awaitable[T]]) -> T:
        """``attempt()``, called again after Azure's wait while the policy allows it."""
        retries, slept = 0, 0.0
        while True:
            try:
                return await attempt()
            except AzureThrottledError as exc:
                wait = exc.retry_after
                if exc.final or not self._allows(retries, slept, wait):
                    self.passed_on += 1
                    exc.final = True
                    raise
                assert wait is not None  # noqa: S101 - _allows refuses a missing wait
                logger.info("Azure OpenAI answered 429; calling again in %d s", wait)
                await self._sleep(wait)
                retries, slept = retries + 1, slept + wait
                self.retries += 1

    def _allows(self, retries: int, slept: float, wait: int | None) -> bool:
        return (
            wait is not None
            and retries < self.policy.max_retries
            and slept + wait <= self.policy.max_wait_seconds
        )

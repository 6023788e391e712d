"""One model on several Azure OpenAI resources: which one serves a call, and failover.

``DeploymentPool.call(send)`` calls ``send(base_url)`` on the preferred resource that is not
cooling down and moves to the next one at once when Azure's answer says the call was not
served there:

- 429: the resource cools down for exactly Azure's wait (``retry-after-ms`` when present, else
  ``retry-after``), then gets calls again; with ``priority`` calls go back to it as soon as its
  cool-down ends.
- a connection that was never established (``AzureUnreachableError``), or Azure's 503: the
  resource cools down with a capped exponential backoff (1 s, 2 s, ... 30 s), reset by a
  success.

Nothing else moves a call: a timeout or a dropped connection after the request was sent may
have been served and billed, and a stream is never moved once its first chunk has been
delivered (the holder passes only the opening of a stream through here). When every resource
is cooling down, ``call`` raises ``AzureThrottledError`` with the soonest recovery as its wait.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from llama_entra.errors import AzureThrottledError, AzureUnreachableError, UpstreamError

__all__ = ["Deployment", "DeploymentPool", "moves_elsewhere"]

logger = logging.getLogger(__name__)

_BACKOFF_FIRST_SECONDS = 1.0
_BACKOFF_CAP_SECONDS = 30.0


@dataclass(slots=True)
class Deployment:
    """One resource's base URL, its cool-down, and what it served."""

    base_url: str
    cooling_until: float = 0.0
    failures_in_a_row: int = 0
    calls: int = 0
    throttled: int = 0
    unavailable: int = 0
    failovers: int = 0  # calls moved from here to another resource

    def cooling(self, now: float) -> bool:
        """Whether the resource gets no calls at ``now``."""
        return now < self.cooling_until


def moves_elsewhere(error: BaseException) -> bool:
    """Whether Azure's answer says the call was not served there (see the module docstring)."""
    if isinstance(error, AzureThrottledError | AzureUnreachableError):
        return True
    return type(error) is UpstreamError and error.status == 503


class DeploymentPool:
    """The resources of one provider (see the module docstring)."""

    def __init__(
        self,
        base_urls: Sequence[str],
        strategy: Literal["priority", "round_robin"] = "priority",
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not base_urls:
            raise ValueError("a deployment pool needs at least one base URL")
        self.deployments = [Deployment(url) for url in dict.fromkeys(base_urls)]
        self.strategy = strategy
        self._clock = clock
        self._turn = itertools.count()

    def order(self) -> list[Deployment]:
        """The resources to try for one call, best first (cooling ones left out)."""
        now = self._clock()
        ready = [d for d in self.deployments if not d.cooling(now)]
        if self.strategy == "round_robin" and ready:
            start = next(self._turn) % len(ready)
            ready = ready[start:] + ready[:start]
        return ready

    async def call[T](self, send: Callable[[str], Awaitable[T]], *, failover: bool = True) -> T:
        """``send(base_url)`` on the first resource that serves it (module docstring).

        ``failover=False`` is for a request that cannot be sent twice (a body streamed through
        the proxy): the first resource not cooling down gets it, and cools down as usual if it
        refuses, but the refusal goes to the caller.
        """
        tried: Deployment | None = None
        for deployment in self.order():
            if tried is not None:
                tried.failovers += 1
                logger.info("Azure call moved from %s to %s", tried.base_url, deployment.base_url)
            tried = deployment
            deployment.calls += 1
            try:
                result = await send(deployment.base_url)
            except Exception as exc:
                if not moves_elsewhere(exc):
                    raise
                self._cool_down(deployment, exc)
                if not failover:
                    raise
                continue
            deployment.failures_in_a_row = 0
            return result
        raise self._all_cooling()

    def _cool_down(self, deployment: Deployment, error: BaseException) -> None:
        now = self._clock()
        if isinstance(error, AzureThrottledError) and error.wait is not None:
            deployment.throttled += 1
            wait = float(error.wait)
        else:
            deployment.unavailable += 1
            deployment.failures_in_a_row += 1
            wait = min(
                _BACKOFF_FIRST_SECONDS * 2 ** (deployment.failures_in_a_row - 1),
                _BACKOFF_CAP_SECONDS,
            )
        deployment.cooling_until = max(deployment.cooling_until, now + wait)
        logger.warning("Azure OpenAI at %s cools down for %.1f s", deployment.base_url, wait)

    def _all_cooling(self) -> AzureThrottledError:
        now = self._clock()
        soonest = min(d.cooling_until for d in self.deployments) - now
        wait = max(1, math.ceil(soonest))
        return AzureThrottledError(
            f"Every Azure OpenAI resource of the model is cooling down. Please retry after "
            f"{wait} seconds.",
            retry_after=wait,
            headers={"Retry-After": str(wait)},
        )
